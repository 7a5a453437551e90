r"""Efficient importance sampling (EIS) likelihood of the Wishart SV model, with Wishart kernels.

The model (see [`bayesvol.models.WishartSV`][bayesvol.models.WishartSV]) is
$y_t \mid \Omega_t \sim N(0, \Omega_t^{-1})$, $\Omega_t \mid \Omega_{t-1} \sim W_k(\nu, S_{t-1})$,
$S_{t-1} = \nu^{-1} L\,\Omega_{t-1}^{d} L'$ with $A = LL'$, and $\Omega_0 = \bar\Omega$.

Sampler. With the auxiliary Wishart kernel $\zeta_t(\Omega) = |\Omega|^{c_t/2}\exp\{-\mathrm{tr}(C_t
\Omega)/2\}$, the product $g(y_t\mid\Omega_t)\,p(\Omega_t\mid\Omega_{t-1})\,\zeta_t(\Omega_t)$ is a Wishart
kernel in $\Omega_t$ (normal–Wishart conjugacy): degrees of freedom $m_t = \nu + 1 + c_t$ and
inverse scale $M_t = S_{t-1}^{-1} + y_t y_t' + C_t$. Its integral is

$$
\chi_t(\Omega_{t-1}) = (2\pi)^{-k/2}\,
\frac{2^{m_t k/2}\,|M_t|^{-m_t/2}\,\Gamma_k(m_t/2)}{2^{\nu k/2}\,|S_{t-1}|^{\nu/2}\,\Gamma_k(\nu/2)},
$$

so the sampler $m_t(\Omega_t\mid\Omega_{t-1}) = W_k(m_t, M_t^{-1})$ and its constant are closed-form.

EIS regressions. Going backwards from $t = T$ (where $\chi_{T+1} \equiv 1$, so
$c_T = 0, C_T = 0$), $\log\chi_{t+1}(\Omega_t^{(i)})$ is regressed by least squares on
$(1, \log|\Omega_t^{(i)}|, \mathrm{vech}\,\Omega_t^{(i)})$ over the draws; the slopes give
$c_t/2$ and $-C_t/2$ ($-C_{t,ij}$ off the diagonal). Draws are redrawn forward from the
new samplers with the same random numbers, and the two passes are repeated until the kernels stop
changing (largest relative change below a tolerance, or a maximum number of passes), starting from
$c_t = 0, C_t = 0$, the conjugate "prior times likelihood" sampler (or from given kernels, a warm
start). The kernels are computed with the parameters' gradients stopped: the final estimate is unbiased
for any fixed kernels, and its derivative is taken with the kernels held fixed (the derivative of the
common-random-numbers estimate with that sampler), which avoids differentiating through the passes.

Draws and weights. $\Omega_t = R\,B B' R'$ with $R = M_t^{-1/2}$ (inverse transposed Cholesky
factor) and Bartlett's lower-triangular $B$. Its diagonal squares should be $\chi^2_{m_t-i+1}$;
they are drawn as $2 g$ with $g = \delta\,|1 + \kappa z|^3$, $\delta = a - 1/3$,
$\kappa = (9\delta)^{-1/2}$, $z \sim N(0, 1)$ (the Marsaglia–Tsang map of a normal draw without
its rejection step), which is smooth in $m_t$ for fixed $z$ (common random numbers) and has a
closed-form density. The importance weights use that exact density,

$$
\log w_t = \log g(y_t\mid\Omega_t) + \log p(\Omega_t\mid\Omega_{t-1}) - \log W_k(\Omega_t; m_t, M_t^{-1})
           - \sum_i \big[\log q_i(x_i) - \log \chi^2_{m_t-i+1}(x_i)\big],
$$

(the Bartlett map's Jacobian does not depend on the law of its inputs, so the bracket is the whole
difference between the sampler and the Wishart kernel), and the likelihood estimate is
$\hat L = N^{-1}\sum_i \prod_t w_t^{(i)}$, unbiased for any sampler parameters.

Where a regression proposes an auxiliary kernel that makes $M_t$ indefinite for a draw, that draw
uses $C_t = 0, c_t = 0$ (a valid sampler, with its own weight); the fraction of such draws is
reported. $c_t$ is kept at or above $k - 1 - \nu$ so that $m_t \ge k$.

Every pass is one step function scanned by the filter driver (`bayesvol.filters._driver`): the forward
and backward passes of the kernel iteration with `scan_steps`, the final pass
(plain or with resampling) with `run_filter`, starting from the carry that
$\Omega_0$ gives (the first step is like the others).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import gammaln, logsumexp, multigammaln

import bayesvol.filters._driver as _driver
from bayesvol.distributions._constants import LOG_2, LOG_2PI
from bayesvol.distributions.wishart import EIGH_CHECKPOINT_NAME, gaussian_precision_log_prob
from bayesvol.filters.resampling import effective_sample_size, normalise_log_weights, systematic_resample
from bayesvol.models._linalg import logdet_from_cholesky
from bayesvol.models._wishart_linalg import scale_inverse

__all__ = ["WishartEISResult", "bartlett_chi_square_log_density", "eis_kernels", "wishart_eis"]

_RIDGE = 1e-9


class WishartEISResult(NamedTuple):
    """Result of [`wishart_eis`][bayesvol.filters.eis_wishart.wishart_eis] (JAX arrays).

    Attributes
    ----------
    log_likelihood : ()
        $\\log \\hat L$.
    pointwise_log_likelihood : (T,)
        Terms that add up to the log-likelihood estimate. Plain EIS: a telescoping split (term t is the change
        in the log of the running weight average; they are *not* one-step-ahead predictive densities); with
        resampling: estimates of $\\log p(y_t \\mid y_{1:t-1})$.
    log_weights : (N,)
        Log importance weight of each simulated path.
    precision : (T, N, k, k)
        Simulated precision paths $\\Omega_t^{(i)}$ from the final sampler.
    scale_inverse_last : (N, k, k)
        $S_T^{-1}$ per path; $E[\\Omega_{T+1}^{-1}\\mid\\Omega_T] = S_T^{-1}/(\\nu - k - 1)$.
    c, C : (T,), (T, k, k)
        Auxiliary kernel parameters $c_t, C_t$ of the final sampler.
    change : ()
        Largest absolute change in $(c_t, C_t)$ (relative to 1 + their size) in the last iteration.
    fallback_rate : ()
        Fraction of draws in the final pass that fell back to $C_t = 0$ (indefinite $M_t$).
    ess : ()
        Effective sample size $(\\sum w)^2/\\sum w^2$ of the final weights.
    resample_rate : ()
        Fraction of time steps at which the particle version resampled (0 without resampling).
    filtered_scale_inverse : (T, k, k) or None
        With resampling: $E[S_t^{-1} \\mid y_{1:t}]$ under the filtering law, so that
        $E[\\Omega_{t+1}^{-1} \\mid y_{1:t}]$ is it divided by $\\nu - k - 1$; None without.
    iterations : ()
        Number of forward/backward EIS passes run before the final pass.

    The former names ``loglik`` and ``pointwise`` remain readable.
    """

    log_likelihood: jax.Array
    pointwise_log_likelihood: jax.Array
    log_weights: jax.Array
    precision: jax.Array
    scale_inverse_last: jax.Array
    c: jax.Array
    C: jax.Array
    change: jax.Array
    fallback_rate: jax.Array
    ess: jax.Array
    resample_rate: jax.Array
    filtered_scale_inverse: jax.Array | None = None
    iterations: jax.Array | None = None

    loglik = _driver.alias("log_likelihood")
    pointwise = _driver.alias("pointwise_log_likelihood")


def _chi_square_from_normal(z, df):
    """``x = 2 delta |1 + kappa z|^3`` with Marsaglia–Tsang's constants for shape ``df / 2``."""
    delta = 0.5 * df - 1.0 / 3.0
    kappa = 1.0 / jnp.sqrt(9.0 * delta)
    return 2.0 * delta * jnp.abs(1.0 + kappa * z) ** 3


def bartlett_chi_square_log_density(x, df):
    r"""Log density of $x = 2\delta|1 + \kappa z|^3$, $z \sim N(0, 1)$ (the sampler's diagonal law).

    With $r = (x / 2\delta)^{1/3}$ the two preimages are $z_\pm = (\pm r - 1)/\kappa$, so
    $q(x) = [\phi(z_+) + \phi(z_-)] / (6\,\delta\,\kappa\,r^2)$.
    """
    delta = 0.5 * df - 1.0 / 3.0
    kappa = 1.0 / jnp.sqrt(9.0 * delta)
    r = (x / (2.0 * delta)) ** (1.0 / 3.0)
    z_plus, z_minus = (r - 1.0) / kappa, (-r - 1.0) / kappa
    log_phi = jnp.logaddexp(-0.5 * z_plus**2, -0.5 * z_minus**2) - 0.5 * LOG_2PI
    return log_phi - jnp.log(6.0 * delta * kappa) - 2.0 * jnp.log(r)


def _chi_square_log_density(x, df):
    return (0.5 * df - 1.0) * jnp.log(x) - 0.5 * x - 0.5 * df * LOG_2 - gammaln(0.5 * df)


def _aux_matrix(coef_vech, k):
    """Auxiliary kernel matrix C from the slopes on vech(Omega) (lower triangle, row by row).

    ``tr(C Omega) = sum_i C_ii Omega_ii + 2 sum_{i>j} C_ij Omega_ij`` and the kernel is
    ``exp(-tr(C Omega)/2)``, so a slope ``beta`` on ``Omega_ii`` gives ``C_ii = -2 beta`` and on ``Omega_ij``
    (i > j) gives ``C_ij = -beta``.
    """
    rows, cols = jnp.tril_indices(k)
    lower = jnp.zeros((k, k), dtype=coef_vech.dtype).at[rows, cols].set(
        jnp.where(rows == cols, -2.0 * coef_vech, -coef_vech))
    return lower + lower.T - jnp.diag(jnp.diag(lower))


def _sampler(s_inv_prev, y_t, c_t, C_t, nu):
    """Inverse scale, its Cholesky factor, degrees of freedom and fallback flag for each draw."""
    k = y_t.shape[-1]
    base = s_inv_prev + jnp.outer(y_t, y_t)
    full = base + C_t
    df_full = nu + 1.0 + c_t
    ok = jnp.all(jnp.isfinite(jnp.linalg.cholesky(full)), axis=(-2, -1)) & (df_full > k - 1.0)
    inv_scale = jnp.where(ok[:, None, None], full, base)
    df = jnp.where(ok, df_full, nu + 1.0)
    return inv_scale, jnp.linalg.cholesky(inv_scale), df, ok


def _log_normalizers(df, chol_m, logdet_s_prev, nu, k):
    """Log integrating constants of the sampler kernel and of the transition density (per draw)."""
    log_norm_m = 0.5 * df * k * LOG_2 - 0.5 * df * logdet_from_cholesky(chol_m) + multigammaln(0.5 * df, k)
    log_norm_p = 0.5 * nu * k * LOG_2 + 0.5 * nu * logdet_s_prev + multigammaln(0.5 * nu, k)
    return log_norm_m, log_norm_p


def _log_chi(s_inv_prev, logdet_s_prev, y_t, c_t, C_t, nu):
    r"""$\log\chi_t(\Omega_{t-1})$ per draw, with the same fallback rule as the sampler."""
    k = y_t.shape[-1]
    _, chol_m, df, _ = _sampler(s_inv_prev, y_t, c_t, C_t, nu)
    log_norm_m, log_norm_p = _log_normalizers(df, chol_m, logdet_s_prev, nu, k)
    return -0.5 * k * LOG_2PI + log_norm_m - log_norm_p


def _propagate(s_inv_prev, logdet_s_prev, y_t, c_t, C_t, zd, zo, nu, d, chol_a):
    """One step for every draw: sample Omega_t from the EIS sampler, its log weight and S_t^{-1}.

    Returns ``omega, s_inv, logdet_s, logdet_omega, log_w, log_chi, ok`` where ``log_w`` is
    ``log g + log p - log q`` (q the sampler actually used) and ``log_chi`` is ``log chi_t(Omega_{t-1})``.
    """
    num_draws, k = zd.shape
    rows, cols = jnp.tril_indices(k, -1)
    _, chol_m, df, ok = _sampler(s_inv_prev, y_t, c_t, C_t, nu)
    df_diag = df[:, None] - jnp.arange(k, dtype=zd.dtype)       # chi-square degrees of freedom m - i + 1
    x = _chi_square_from_normal(zd, df_diag)                     # (N, k)
    bartlett = jnp.zeros((num_draws, k, k), dtype=zd.dtype).at[:, rows, cols].set(zo)
    bartlett = bartlett + jnp.sqrt(x)[:, None, :] * jnp.eye(k, dtype=zd.dtype)
    factor = solve_triangular(jnp.swapaxes(chol_m, -1, -2), bartlett, lower=False)
    omega = factor @ jnp.swapaxes(factor, -1, -2)
    logdet_omega = jnp.sum(jnp.log(x), axis=-1) - logdet_from_cholesky(chol_m)
    log_norm_m, log_norm_p = _log_normalizers(df, chol_m, logdet_s_prev, nu, k)
    # tr(M_t Omega_t) = ||B||_F^2 because Omega_t = M_t^{-1/2} B B' M_t^{-1/2}'.
    log_sampler = (0.5 * (df - k - 1.0) * logdet_omega - 0.5 * jnp.sum(bartlett**2, axis=(-2, -1)) - log_norm_m
                   + jnp.sum(bartlett_chi_square_log_density(x, df_diag) - _chi_square_log_density(x, df_diag),
                             axis=-1))
    log_transition = (0.5 * (nu - k - 1.0) * logdet_omega - 0.5 * jnp.sum(s_inv_prev * omega, axis=(-2, -1))
                      - log_norm_p)
    log_obs = gaussian_precision_log_prob(y_t, precision=omega, logdet_precision=logdet_omega)
    s_inv, logdet_s = scale_inverse(omega, nu, d, chol_a, logdet_omega)
    log_chi = -0.5 * k * LOG_2PI + log_norm_m - log_norm_p
    return omega, s_inv, logdet_s, logdet_omega, log_obs + log_transition - log_sampler, log_chi, ok


def _initial_carry(omega0, num_draws, nu, d, chol_a):
    k = omega0.shape[-1]
    s_inv0, logdet_s0 = scale_inverse(omega0, nu, d, chol_a)
    return jnp.broadcast_to(s_inv0, (num_draws, k, k)), jnp.broadcast_to(logdet_s0, (num_draws,))


def _forward_step(nu, d, chol_a, checkpoint: bool):
    """One step of every draw from the samplers (c, C) with fixed normals; carry ``(S^{-1}, log|S|)``."""

    def step(carry, inputs):
        omega, s_inv, logdet_s, logdet_omega, log_w, _, ok = _propagate(*carry, *inputs, nu, d, chol_a)
        return (s_inv, logdet_s), (omega, s_inv, logdet_s, logdet_omega, log_w, ok)

    if checkpoint:
        # Keep only the eigen-systems of Omega_t (for Omega_t^{-d}); the rest is recomputed in the backward pass.
        step = jax.checkpoint(step, policy=jax.checkpoint_policies.save_only_these_names(EIGH_CHECKPOINT_NAME))
    return step


def _forward(y, c, C, z_diag, z_offdiag, nu, d, chol_a, omega0):
    """Whole paths drawn from the samplers (c, C) with fixed normals (no resampling), for the EIS regressions:
    ``(omega, s_inv, logdet_s, logdet_omega, log_w, ok)``, each with leading axes (T, N)."""
    carry0 = _initial_carry(omega0, z_diag.shape[1], nu, d, chol_a)
    _, paths = _driver.scan_steps(_forward_step(nu, d, chol_a, False), (y, c, C, z_diag, z_offdiag), carry=carry0)
    return paths


def _importance_sampling(y, c, C, z_diag, z_offdiag, nu, d, chol_a, omega0, fields) -> WishartEISResult:
    r"""The plain EIS estimate: whole paths from the samplers (c, C), weighted at the end (no resampling).

    Every step is checkpointed: reverse-mode differentiation recomputes it in the backward pass instead of
    storing its intermediates (memory T x N x k x k instead of many times that), except the eigen-systems
    behind $\Omega_t^{-d}$, which are kept (one more T x N x k x k array): the eigendecompositions are
    the most expensive item of a step, and keeping them made the value and gradient 15 to 20 % faster at
    k = 5 and 10 (T = 1000, N = 128) than recomputing them. ``fields`` are result fields from the kernel
    passes.
    """
    num_draws = z_diag.shape[1]

    def finish(carry, paths):
        omega, _, _, _, log_w, ok = paths
        cumulative = jnp.cumsum(log_w, axis=0)                       # (T, N)
        running = logsumexp(cumulative, axis=1) - jnp.log(num_draws)
        path_log_w = cumulative[-1]
        normalised = jnp.exp(path_log_w - logsumexp(path_log_w))
        # The estimate is the log of the average path weight; the terms split it (a telescoping sum).
        return dict(fields, log_likelihood=running[-1],
                    pointwise_log_likelihood=jnp.diff(running, prepend=jnp.zeros((1,), dtype=y.dtype)),
                    log_weights=path_log_w, precision=omega, scale_inverse_last=carry[0],
                    fallback_rate=1.0 - jnp.mean(ok), ess=1.0 / jnp.sum(normalised**2),
                    resample_rate=jnp.zeros((), dtype=y.dtype))

    carry0 = _initial_carry(omega0, num_draws, nu, d, chol_a)
    return _driver.run_filter(WishartEISResult, None, _forward_step(nu, d, chol_a, True),
                              (y, c, C, z_diag, z_offdiag), carry=carry0, finish=finish)


def _sequential(y, c, C, z_diag, z_offdiag, resample_keys, nu, d, chol_a, omega0, fields,
                threshold=1.0) -> WishartEISResult:
    r"""The samplers (c, C) as proposals of a particle filter with adaptive systematic resampling.

    Incremental weight of a draw: $w_t = g\,p\,\chi_{t+1}(\Omega_t) / (q_t\,\chi_t(\Omega_{t-1}))$
    ($\chi_{T+1} \equiv 1$, and $\chi_1$ kept in the first term), so the product over time of
    the weighted means is unbiased for the likelihood and, with resampling, its log has a variance that
    grows linearly in T. With $c = 0, C = 0$ this is the fully adapted particle filter
    ($\chi_t(\Omega_{t-1}) = p(y_t \mid \Omega_{t-1})$). The carried weights include the look-ahead
    factor $\chi_{t+1}(\Omega_t)$; the filtering law $p(\Omega_t \mid y_{1:t})$ uses the weights
    without it, and gives the one-step forecasts $E[S_t^{-1} \mid y_{1:t}]$ returned here. ``fields``
    are result fields from the kernel passes.
    """
    T, k = y.shape
    num_particles = z_diag.shape[1]
    y_next = jnp.concatenate([y[1:], jnp.zeros((1, k), dtype=y.dtype)])
    c_next = jnp.concatenate([c[1:], jnp.zeros((1,), dtype=y.dtype)])
    C_next = jnp.concatenate([C[1:], jnp.zeros((1, k, k), dtype=y.dtype)])
    not_last = jnp.arange(T) < T - 1
    not_first = jnp.arange(T) > 0

    def step(carry, inputs):
        s_inv_prev, logdet_s_prev, log_w_prev = carry
        y_t, c_t, C_t, zd, zo, key_t, y_n, c_n, C_n, has_next, has_prev = inputs
        _, s_inv, logdet_s, _, log_w, log_chi, _ = _propagate(s_inv_prev, logdet_s_prev, y_t, c_t, C_t, zd, zo,
                                                              nu, d, chol_a)
        log_chi_next = _log_chi(s_inv, logdet_s, y_n, c_n, C_n, nu)
        increment = log_w + jnp.where(has_prev, -log_chi, 0.0) + jnp.where(has_next, log_chi_next, 0.0)
        log_w_new, loglik_t = normalise_log_weights(log_w_prev + increment)
        # Filtering weights for p(Omega_t | y_{1:t}): without the look-ahead factor chi_{t+1}(Omega_t).
        log_w_filter, _ = normalise_log_weights(log_w_prev + log_w + jnp.where(has_prev, -log_chi, 0.0))
        filtered_s_inv = jnp.einsum("n,nij->ij", jnp.exp(log_w_filter), s_inv)
        resample = effective_sample_size(log_w_new) <= threshold * num_particles
        idx = jnp.where(resample, systematic_resample(key_t, log_w_new), jnp.arange(num_particles))
        log_w_new = jnp.where(resample, -jnp.log(num_particles) * jnp.ones_like(log_w_new), log_w_new)
        return (s_inv[idx], logdet_s[idx], log_w_new), {"pointwise_log_likelihood": loglik_t,
                                                        "filtered_scale_inverse": filtered_s_inv,
                                                        "resampled": resample}

    def finish(carry, out):
        s_inv_last, _, log_w_last = carry
        return dict(fields, pointwise_log_likelihood=out["pointwise_log_likelihood"], log_weights=log_w_last,
                    precision=None, scale_inverse_last=s_inv_last, fallback_rate=jnp.nan,
                    ess=1.0 / jnp.sum(jnp.exp(log_w_last)**2), resample_rate=jnp.mean(out["resampled"]),
                    filtered_scale_inverse=out["filtered_scale_inverse"])

    s_inv0, logdet_s0 = _initial_carry(omega0, num_particles, nu, d, chol_a)
    carry0 = (s_inv0, logdet_s0, jnp.full((num_particles,), -jnp.log(num_particles), dtype=y.dtype))
    inputs = (y, c, C, z_diag, z_offdiag, resample_keys, y_next, c_next, C_next, not_last, not_first)
    return _driver.run_filter(WishartEISResult, None, step, inputs, carry=carry0, finish=finish)


def _regressors(omega, logdet_omega):
    k = omega.shape[-1]
    rows, cols = jnp.tril_indices(k)
    return jnp.concatenate([logdet_omega[:, None], omega[:, rows, cols]], axis=1)


def _least_squares(features, target):
    """Slopes of an OLS regression with intercept (columns standardised, tiny ridge for stability)."""
    centred = features - jnp.mean(features, axis=0)
    scale = jnp.sqrt(jnp.mean(centred**2, axis=0))
    scale = jnp.where(scale > 0.0, scale, 1.0)
    standard = centred / scale
    gram = standard.T @ standard / features.shape[0] + _RIDGE * jnp.eye(features.shape[1], dtype=features.dtype)
    rhs = standard.T @ (target - jnp.mean(target)) / features.shape[0]
    chol = jnp.linalg.cholesky(gram)
    coef = jax.scipy.linalg.cho_solve((chol, True), rhs)
    return coef / scale


def _backward(y, paths, nu):
    """EIS regressions from t = T - 1 down to 1; returns (c, C) with c_T = 0, C_T = 0."""
    omega, s_inv, logdet_s, logdet_omega, _, _ = paths
    k = y.shape[1]

    @jax.checkpoint
    def step(carry, inputs):
        c_next, C_next = carry
        omega_t, s_inv_t, logdet_s_t, logdet_omega_t, y_next = inputs
        target = _log_chi(s_inv_t, logdet_s_t, y_next, c_next, C_next, nu)
        coef = _least_squares(_regressors(omega_t, logdet_omega_t), target)
        c_t = jnp.maximum(2.0 * coef[0], k - 1.0 - nu)
        C_t = _aux_matrix(coef[1:], k)
        return (c_t, C_t), (c_t, C_t)

    zero = (jnp.zeros((), dtype=y.dtype), jnp.zeros((k, k), dtype=y.dtype))
    inputs = (omega[:-1], s_inv[:-1], logdet_s[:-1], logdet_omega[:-1], y[1:])
    _, (c_head, C_head) = _driver.scan_steps(step, inputs, carry=zero, reverse=True)
    return jnp.concatenate([c_head, zero[0][None]]), jnp.concatenate([C_head, zero[1][None]])


def eis_kernels(y, z_diag, z_offdiag, nu, d, chol_a, omega0, *, num_iterations: int = 10, tolerance: float = 1e-2,
                initial=None):
    r"""EIS auxiliary kernels $(c_t, C_t)$ by fixed-point iteration, stopped on convergence.

    Forward pass (draws from the current samplers with the fixed normals), backward pass (the
    regressions), repeated until the largest relative change of $(c_t, C_t)$ falls below
    ``tolerance`` or after ``num_iterations`` passes. ``initial`` = ``(c, C)`` warm-starts the iteration
    (e.g. from the kernels at nearby parameters); by default it starts from $c_t = 0, C_t = 0$.

    The kernels are computed from ``lax.stop_gradient`` of the parameters, so derivatives of a likelihood
    estimate that uses them are taken with the kernels held fixed: the estimate is unbiased for any fixed
    kernels, and its derivative with fixed kernels and common random numbers is the derivative of one
    smooth function of the parameters (the importance-sampling estimate with that sampler).

    Returns
    -------
    c, C, change, iterations
        Kernels (T,), (T, k, k), the last relative change and the number of passes run.
    """
    T, k = y.shape
    nu, d, chol_a, omega0 = (lax.stop_gradient(v) for v in (nu, d, chol_a, omega0))
    if initial is None:
        c0, C0 = jnp.zeros((T,), dtype=y.dtype), jnp.zeros((T, k, k), dtype=y.dtype)
    else:
        c0, C0 = (lax.stop_gradient(jnp.asarray(v, dtype=y.dtype)) for v in initial)
    if num_iterations == 0:
        return c0, C0, jnp.asarray(jnp.inf, dtype=y.dtype), jnp.zeros((), dtype=jnp.int32)

    def one_pass(state):
        c, C, _, count = state
        paths = _forward(y, c, C, z_diag, z_offdiag, nu, d, chol_a, omega0)
        c_new, C_new = _backward(y, paths, nu)
        change = jnp.maximum(jnp.max(jnp.abs(c_new - c) / (1.0 + jnp.abs(c))),
                             jnp.max(jnp.abs(C_new - C) / (1.0 + jnp.abs(C))))
        return c_new, C_new, change, count + 1

    def not_done(state):
        _, _, change, count = state
        return (count < num_iterations) & ~(change < tolerance)

    state0 = (c0, C0, jnp.asarray(jnp.inf, dtype=y.dtype), jnp.zeros((), dtype=jnp.int32))
    return lax.while_loop(not_done, one_pass, state0)


def wishart_eis(y, nu, d, chol_a, omega0, *, num_draws: int = 64, num_iterations: int = 10,
                tolerance: float = 1e-2, key=None, z_diag=None, z_offdiag=None, resample_keys=None,
                resample: bool = False, initial_kernels=None) -> WishartEISResult:
    r"""EIS estimate of the Wishart SV log-likelihood (pure JAX).

    Parameters
    ----------
    y : (T, k) array
        Returns.
    nu, d : scalars
        Wishart degrees of freedom $\nu > k - 1$ and persistence $0 < d < 1$.
    chol_a : (k, k) array
        Lower Cholesky factor of $A$.
    omega0 : (k, k) array
        $\Omega_0$, the precision the first transition starts from.
    num_draws : int
        Simulated paths N (common random numbers: the same normals for every parameter value); with
        ``resample=True`` they are the particles.
    num_iterations : int
        Largest number of forward/backward EIS passes before the final pass (0 gives the conjugate
        sampler $c_t = 0, C_t = 0$, or ``initial_kernels``).
    tolerance : float
        The passes stop once the largest relative change of the kernels is below it (see
        `eis_kernels`).
    key : jax.random.PRNGKey
        Seed of the common random numbers (or give ``z_diag`` (T, N, k), ``z_offdiag`` (T, N, k(k-1)/2)
        standard normals and ``resample_keys`` (T PRNG keys, for the resampling steps) yourself).
    resample : bool
        Final pass as a particle filter with the EIS samplers as proposals (adaptive systematic
        resampling): much smaller variance for long series, but piecewise constant in the parameters
        (resampling indices jump), so not for gradient-based optimisation. Without it the estimate is the
        plain importance-sampling average over whole paths, smooth in the parameters.
    initial_kernels : tuple (c, C), optional
        Warm start of the kernel iteration.

    Returns
    -------
    WishartEISResult
        Derivatives of ``log_likelihood`` with respect to the parameters hold the kernels fixed (see
        `eis_kernels`).
    """
    T, k = y.shape
    if z_diag is None:
        key_diag, key_off, key_unif = jax.random.split(key, 3)
        z_diag = jax.random.normal(key_diag, (T, num_draws, k), dtype=y.dtype)
        z_offdiag = jax.random.normal(key_off, (T, num_draws, k * (k - 1) // 2), dtype=y.dtype)
        resample_keys = jax.random.split(key_unif, T)
    c, C, change, passes = eis_kernels(y, z_diag, z_offdiag, nu, d, chol_a, omega0, num_iterations=num_iterations,
                                       tolerance=tolerance, initial=initial_kernels)
    fields = {"c": c, "C": C, "change": change, "iterations": passes}
    if resample:
        return _sequential(y, c, C, z_diag, z_offdiag, resample_keys, nu, d, chol_a, omega0, fields)
    return _importance_sampling(y, c, C, z_diag, z_offdiag, nu, d, chol_a, omega0, fields)
