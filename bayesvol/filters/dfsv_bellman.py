r"""Bellman filter and smoother for [`DFSV`][bayesvol.models.DFSV]: Laplace steps in the log-variances with the
factors integrated out exactly.

The state is split as $x_t = (f_t, g_t)$ with $g_t = (h_t, h^{id}_t)$ the log-variances. Given
$g$, the factors are linear-Gaussian; the log-variances follow the Gaussian VAR(1) of
`bayesvol.models._dfsv_state.log_variance_var`. The filter is an ``init`` (the stationary start) and a
``step`` run by the filter driver (`bayesvol.filters._driver`); the prediction step calls the model's
state equations (`log_variance_moments`,
`propagate_factors`, `factor_moments`);
the likelihood methods built on this filter are in `bayesvol.filters.dfsv_methods`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

import bayesvol.filters._driver as _driver
import bayesvol.models._dfsv_kalman as kalman
from bayesvol.distributions._constants import LOG_2PI
from bayesvol.filters._newton import _STEP_LENGTHS, maximise
from bayesvol.filters.kalman import rts_smoother
from bayesvol.models._dfsv_priors import solve_discrete_lyapunov
from bayesvol.models._dfsv_state import (
    factor_mean,
    factor_moments,
    factor_shock_variance,
    factor_stationary_cov,
    log_variance_moments,
    log_variance_var,
    propagate_factors,
)
from bayesvol.models._linalg import cho_solve, cholesky, solve_lower
from bayesvol.models._panel_gaps import has_missing_values

__all__ = ["DFSVBellmanResult", "FactorSpaceData", "bellman_filter", "bellman_smoother", "factor_space_data"]



def _observation_stats_at(model, params, stats_t, y_t, g):
    """Statistics ``(gram, score, quad, logdet)`` of ``r_t`` for the factor update at log-variances ``g``.

    Constant idiosyncratic variances: the precomputed ``stats_t``; idiosyncratic SV: computed from ``h_id``.
    """
    if model.idiosyncratic == "constant":
        return stats_t
    k = model.num_factors
    stats = kalman.observation_stats(params.lambda_r, jnp.exp(g[k:])[None], y_t[None])
    return stats.gram[0], stats.score[0], stats.quad[0], stats.logdet[0], stats.num_assets[0]


# --- the update step's maximisation --------------------------------------------------------------
def _find_mode(log_g, inputs, prior_mean, prior_precision, num_steps: int):
    """Maximise ``log_g(x, inputs) - (x - m)' P (x - m) / 2``; returns the mode and the curvature there.

    The search is `bayesvol.filters._newton.maximise` (Newton steps with exact Hessians, a
    backtracking choice of step length, the prior precision as fallback where the objective is not
    concave), run without gradients. One differentiable full Newton step from its result follows: at a
    fixed point it has the first derivative of the maximiser with respect to the parameters (implicit
    function theorem), so the gradient of the filter's log-likelihood is exact, at a fraction of the cost of
    differentiating every iteration. (Second derivatives are not exact; [`bayesvol.fit`][bayesvol.fit] takes the
    Hessian for standard errors by differences of the gradient.)
    """
    frozen = jax.tree_util.tree_map(lax.stop_gradient, inputs)
    mean, precision = lax.stop_gradient(prior_mean), lax.stop_gradient(prior_precision)
    x = lax.stop_gradient(maximise(lambda x: log_g(x, frozen), mean, precision, num_steps).x)

    def objective(x):
        diff = x - prior_mean
        return log_g(x, inputs) - 0.5 * diff @ prior_precision @ diff

    def curvature_at(x):
        curvature = -jax.hessian(objective)(x)
        curvature = 0.5 * (curvature + curvature.T)
        positive = jnp.all(jnp.isfinite(jnp.linalg.cholesky(lax.stop_gradient(curvature))))
        return jnp.where(positive, curvature, prior_precision)

    x = x + jnp.linalg.solve(curvature_at(x), jax.grad(objective)(x))
    return x, curvature_at(x)


# --- the update step in factor space (constant idiosyncratic variances) ----------------------------
class FactorSpaceData(NamedTuple):
    r"""The returns reduced to ``K`` dimensions for constant $D = \mathrm{diag}(\sigma^2)$.

    ``gls`` (T, K): $\hat f_t = W^{-1} \Lambda' D^{-1} r_t$ with $W = \Lambda' D^{-1} \Lambda$;
    ``gls_cov`` (K, K): $W^{-1}$; ``const`` (T,): $\log p(r_t \mid f_t) - \log N(\hat f_t; f_t,
    W^{-1})$, which does not depend on $f_t$.
    """

    gls: jnp.ndarray
    gls_cov: jnp.ndarray
    const: jnp.ndarray


def factor_space_data(lambda_r, sigma2, y) -> FactorSpaceData:
    r"""`FactorSpaceData` of a panel ``y`` (T, N).

    Notes
    -----
    Completing the square in $f$,

    $$
    N(r; \Lambda f, D) = (2\pi)^{-(N-K)/2} |D|^{-1/2} |W|^{-1/2}
    \exp\{-\tfrac12 (r - \Lambda \hat f)' D^{-1} (r - \Lambda \hat f)\}\, N(\hat f; f, W^{-1}),
    $$

    so for any Gaussian law $f \sim N(m, \Sigma)$,
    $\log N(r; \Lambda m, \Lambda \Sigma \Lambda' + D) = c_t + \log N(\hat f; m, \Sigma + W^{-1})$:
    a ``K``-dimensional density, the ``N``-dimensional work done once before the recursion. The residual
    $r - \Lambda \hat f$ is formed directly, so no cancellation occurs in $c_t$.
    """
    n, k = lambda_r.shape
    scaled = lambda_r / sigma2[:, None]
    gram = lambda_r.T @ scaled
    chol = jnp.linalg.cholesky(0.5 * (gram + gram.T))
    gls_cov = jax.scipy.linalg.cho_solve((chol, True), jnp.eye(k))
    gls = jax.scipy.linalg.cho_solve((chol, True), (y @ scaled).T).T
    resid = y - gls @ lambda_r.T
    const = -0.5 * ((n - k) * LOG_2PI + jnp.sum(jnp.log(sigma2)) + 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
                    + jnp.sum(resid**2 / sigma2, -1))
    return FactorSpaceData(gls, 0.5 * (gls_cov + gls_cov.T), const)


class _FactorSpaceStep(NamedTuple):
    r"""Inputs of the factor-space objective $l(h) = \log N(\hat f; a + S(h - c), B + \sum_j e^{h_j} G_j)$.

    ``basis`` holds $G_1, \dots, G_K$ (K, K, K): the unit matrices $e_j e_j'$ for
    $f_t \mid h_t$ with variance $\mathrm{diag}(e^{h_t})$, and $\Gamma_f(e_j e_j')$ for the
    stationary start ($\Gamma_f(h)$ is linear in $e^h$).
    """

    gls: jnp.ndarray
    loc: jnp.ndarray
    slope: jnp.ndarray
    base: jnp.ndarray
    centre: jnp.ndarray
    basis: jnp.ndarray


def _prior_factor_cov(h, inp: _FactorSpaceStep):
    """``B + sum_j e^{h_j} G_j``; ``h`` may carry leading batch axes."""
    return inp.base + jnp.einsum("...j,jab->...ab", jnp.exp(h), inp.basis)


def _factor_space_loglik(h, inp: _FactorSpaceStep):
    """``l(h)`` without the constant ``c_t``; ``h`` may carry leading batch axes (line-search candidates)."""
    k = h.shape[-1]
    chol = cholesky(_prior_factor_cov(h, inp))
    resid = inp.gls - inp.loc - (h - inp.centre) @ inp.slope.T
    half = solve_lower(chol, resid)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)
    return -0.5 * (k * LOG_2PI + logdet + jnp.sum(half**2, -1))


class _FactorSpaceDerivatives(NamedTuple):
    value: jnp.ndarray
    grad: jnp.ndarray
    hessian: jnp.ndarray
    precision: jnp.ndarray     # P = C(h)^{-1}
    alpha: jnp.ndarray         # P (gls - loc - slope (h - centre))
    basis_alpha: jnp.ndarray   # rows G_j alpha


def _factor_space_derivatives(h, inp: _FactorSpaceStep) -> _FactorSpaceDerivatives:
    r"""Value, gradient and Hessian of ``l(h)`` in closed form.

    With $u = e^h$, $C = B + \sum_j u_j G_j$, $P = C^{-1}$, $e = \hat f - a - S(h -
    c)$, $\alpha = P e$ (so $\partial_j C = u_j G_j$, $\partial_j \alpha = -u_j P G_j \alpha
    - P S_{\cdot j}$):

    $$
    \partial_j l &= d_j + (S'\alpha)_j, \qquad d_j = \tfrac12 u_j (\alpha' G_j \alpha - \mathrm{tr}\, P G_j), \\
    \partial_i \partial_j l &= \delta_{ij} d_j + u_i u_j \big(\tfrac12 \mathrm{tr}(P G_i P G_j)
    - \alpha' G_i P G_j \alpha\big) - u_i \alpha' G_i P S_{\cdot j} - u_j \alpha' G_j P S_{\cdot i}
    - (S'PS)_{ij}.
    $$
    """
    k = h.shape[-1]
    u = jnp.exp(h)
    chol = cholesky(_prior_factor_cov(h, inp))
    precision = cho_solve(chol, jnp.eye(k))
    precision = 0.5 * (precision + precision.T)
    resid = inp.gls - inp.loc - inp.slope @ (h - inp.centre)
    alpha = precision @ resid
    value = -0.5 * (k * LOG_2PI + 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol))) + resid @ alpha)
    p_basis = jnp.einsum("ab,jbc->jac", precision, inp.basis)              # P G_j
    basis_alpha = jnp.einsum("jab,b->ja", inp.basis, alpha)                # G_j alpha
    diag_term = 0.5 * u * (basis_alpha @ alpha - jnp.trace(p_basis, axis1=-2, axis2=-1))
    grad = diag_term + inp.slope.T @ alpha
    ps = precision @ inp.slope
    cross = basis_alpha @ ps                                               # alpha' G_i P S_j
    hessian = (jnp.diag(diag_term)
               + jnp.outer(u, u) * (0.5 * jnp.einsum("iab,jba->ij", p_basis, p_basis)
                                    - basis_alpha @ precision @ basis_alpha.T)
               - u[:, None] * cross - (u[:, None] * cross).T - inp.slope.T @ ps)
    return _FactorSpaceDerivatives(value, grad, 0.5 * (hessian + hessian.T), precision, alpha, basis_alpha)


def _newton_direction(deriv, x, prior_mean, prior_precision):
    """Newton direction for ``l(x) - (x - m)' P (x - m) / 2`` and the curvature used (prior precision where the
    objective is not concave at ``x``)."""
    gradient = deriv.grad - prior_precision @ (x - prior_mean)
    curvature = prior_precision - deriv.hessian
    chol = cholesky(lax.stop_gradient(curvature))
    positive = jnp.all(jnp.isfinite(chol))
    curvature = jnp.where(positive, curvature, prior_precision)
    chol = cholesky(curvature)
    return cho_solve(chol, gradient), curvature, chol


def _factor_space_mode(inp: _FactorSpaceStep, prior_mean, prior_precision, max_steps: int, tol: float = 1e-9):
    """Maximise ``l(h) - (h - m)' P (h - m) / 2``: Newton with closed-form Hessians, stopping once a step moves no
    coordinate by more than ``tol`` (at most ``max_steps`` steps), then one differentiable Newton step.

    The search runs on values without gradients (a ``while_loop`` with a convergence test); the final
    step carries the derivative of the maximiser with respect to the parameters (implicit function
    theorem), as in `_find_mode`. Step lengths are chosen by the same backtracking as
    `bayesvol.filters._newton.maximise`.
    """
    frozen = jax.tree_util.tree_map(lax.stop_gradient, inp)
    mean, precision = lax.stop_gradient(prior_mean), lax.stop_gradient(prior_precision)

    def objective(x):
        diff = x - mean
        value = _factor_space_loglik(x, frozen) - 0.5 * jnp.sum((diff @ precision) * diff, -1)
        return jnp.where(jnp.isnan(value), -jnp.inf, value)

    def cond(state):
        step, _, moved = state
        return (step < max_steps) & (moved > tol)

    def body(state):
        step, x, _ = state
        direction, _, _ = _newton_direction(_factor_space_derivatives(x, frozen), x, mean, precision)
        direction = jnp.where(jnp.all(jnp.isfinite(direction)), direction, 0.0)
        candidates = x[None, :] + _STEP_LENGTHS[:, None] * direction[None, :]
        new = candidates[jnp.argmax(objective(candidates))]
        return step + 1, new, jnp.max(jnp.abs(new - x))

    _, x, _ = lax.while_loop(cond, body, (0, mean, jnp.inf))
    x = lax.stop_gradient(x)
    direction, _, _ = _newton_direction(_factor_space_derivatives(x, inp), x, prior_mean, prior_precision)
    x = x + direction
    deriv = _factor_space_derivatives(x, inp)
    _, information, chol_info = _newton_direction(deriv, x, prior_mean, prior_precision)
    return x, deriv, information, chol_info



# --- the Bellman filter ---------------------------------------------------------------------------
class DFSVBellmanResult(NamedTuple):
    """Output of the DFSV Bellman filter (``T`` steps; joint state $x_t = (f_t, h_t[, h^{id}_t])$ of size
    ``n``).

    Attributes
    ----------
    log_likelihood : jax.Array
        Approximate $\\log p(r_{1:T} \\mid \\theta)$, the sum of ``pointwise_log_likelihood``.
    pointwise_log_likelihood : jax.Array
        Approximate $\\log p(r_t \\mid r_{1:t-1}, \\theta)$ (Laplace in the log-variances), shape ``(T,)``.
    filtered_mean, filtered_covariance : jax.Array
        Filtered moments of the joint state, shapes ``(T, n)`` and ``(T, n, n)``.
    predicted_mean, predicted_covariance : jax.Array
        Moment-matched predictive moments before seeing $r_t$ (for smoothing), same shapes.

    The older names ``loglik`` (the pointwise terms), ``filtered_cov`` and ``predicted_cov`` stay readable.
    """

    log_likelihood: jax.Array
    pointwise_log_likelihood: jax.Array
    filtered_mean: jax.Array
    filtered_covariance: jax.Array
    predicted_mean: jax.Array
    predicted_covariance: jax.Array

    loglik = _driver.alias("pointwise_log_likelihood")
    filtered_cov = _driver.alias("filtered_covariance")
    predicted_cov = _driver.alias("predicted_covariance")


def _stack_state_cov(ff, fg, gg):
    return jnp.concatenate([jnp.concatenate([ff, fg], 1), jnp.concatenate([fg.T, gg], 1)], 0)


def bellman_filter(model, params, y, num_newton_steps: int = 8) -> DFSVBellmanResult:
    r"""Bellman filter for the log-variances with the factors integrated out exactly in each step.

    Parameters
    ----------
    model : bayesvol.models.DFSV
    params : DFSVParams
        Checked parameters (see `bayesvol.models._base.as_params`).
    y : jax.Array
        Returns, shape (T, N).
    num_newton_steps : int
        Newton iterations per time step (from the predicted mean of the log-variances); with constant
        idiosyncratic variances at most this many, stopping once a step moves no coordinate by 1e-9.

    Returns
    -------
    DFSVBellmanResult
        Filtered means and covariances of the joint state $x_t = (f_t, g_t)$,
        $g_t = (h_t[, h^{id}_t])$.

    Notes
    -----
    The filtered law of $x_{t-1}$ is approximated by $N(a_{t-1}, P_{t-1})$. Under it the
    predictive law of $x_t$ is exact: $g_t \sim N(m_g, V_g)$ with $m_g = c + T a^g_{t-1}$,
    $V_g = T P^{gg} T' + Q_g$, and given $g_t$, $f_{t-1}$ is Gaussian with mean
    $a^f + B(g_t - m_g)$, $B = P^{fg} T' V_g^{-1}$, and covariance $P^{ff} - B T P^{gf}$, so

    $$
    f_t \mid g_t \sim N\big(\mu_f(g_t), \Sigma_f(g_t)\big), \quad \mu_f(g) = \Phi_f (a^f + B (g - m_g)),
    \quad \Sigma_f(g) = \Phi_f (P^{ff} - B T P^{gf}) \Phi_f' + \mathrm{diag}(e^{h}).
    $$

    The factors enter linearly, so $\ell_t(g) = \log p(r_t \mid g, r_{1:t-1}) = \log N(r_t; \Lambda
    \mu_f(g), \Lambda \Sigma_f(g) \Lambda' + \Sigma_t(g))$ is a Kalman update. The Bellman step (Lange
    2024) then works on the log-variances alone: $\hat g_t = \arg\max_g \ell_t(g) + \log N(g; m_g,
    V_g)$ by Newton's method with exact (autodiff) Hessians, $I_t = V_g^{-1} - \nabla^2 \ell_t(\hat
    g_t)$, and the log-likelihood contribution is the Laplace approximation

    $$
    \hat\ell_t = \ell_t(\hat g_t) - \tfrac12 (\hat g_t - m_g)' V_g^{-1} (\hat g_t - m_g)
    - \tfrac12 \log\det V_g - \tfrac12 \log\det I_t,
    $$

    exact in the factors and approximate only in the log-variances. Maximising jointly over
    $(f_t, g_t)$ instead would meet the funnel of $\log N(f; \mu, e^{h})$, which grows without
    bound as $f \to \mu$, $h \to -\infty$; its modes pull the log-variances down and bias the
    estimates of $\Phi_h$ and $Q_h$. The filtered factors are the Kalman update at
    $\hat g_t$, $m_f(\hat g_t)$ with covariance $C_f(\hat g_t) + G P^{gg}_t G'$,
    $G = \partial m_f / \partial g$, $P^{gg}_t = I_t^{-1}$ and cross-covariance $G
    P^{gg}_t$ (the delta method). At $t = 1$, $g_1$ has its stationary law and
    $f_1 \mid h_1 \sim N(0, \Gamma_f(h_1))$.

    With constant idiosyncratic variances every step works in ``K`` dimensions (`factor_space_data`):
    $\ell_t(h) = c_t + \log N(\hat f_t; \mu_f(h), \Sigma_f(h) + W^{-1})$, whose gradient and Hessian
    are written in closed form (`_factor_space_derivatives`), so a Newton iteration costs
    $O(K^3)$ whatever ``N``. With idiosyncratic SV the log-variances of all ``N`` assets are part of
    the mode search and the general step (autodiff Hessians) is used.
    """
    k = model.num_factors
    y = jnp.asarray(y)
    Phi_f = params.Phi_f
    var = log_variance_var(params, model.idiosyncratic == "sv")
    dim_g = var.mean.shape[0]
    if model.idiosyncratic == "constant":
        stats = kalman.observation_stats(params.lambda_r, params.sigma2, y)
        stats_seq = (stats.gram, stats.score, stats.quad, stats.logdet, stats.num_assets)
    else:   # computed per step from h_id; placeholders keep the scan inputs uniform
        stats_seq = (jnp.zeros((y.shape[0],)),) * 5
    eye_g = jnp.eye(dim_g)

    def update(y_t, stats_t, mean_g, cov_g, factor_mean, factor_base_cov, factor_slope, stationary_start):
        """One Bellman step; returns (loglik_t, filtered mean, filtered covariance) of the joint state."""
        chol_g = jnp.linalg.cholesky(cov_g)
        precision = jax.scipy.linalg.cho_solve((chol_g, True), eye_g)
        precision = 0.5 * (precision + precision.T)

        def factor_update(g, inputs):
            theta, stats_t, y_t, mean_g, factor_mean, factor_base_cov, factor_slope = inputs
            h = g[:k]
            if stationary_start:
                cov_f = factor_stationary_cov(theta.Phi_f, h)
            else:
                cov_f = factor_base_cov + jnp.diag(factor_shock_variance(h))
            loc_f = factor_mean + factor_slope @ (g - mean_g)
            obs = _observation_stats_at(model, theta, stats_t, y_t, g)
            return kalman.update_with_stats(loc_f, 0.5 * (cov_f + cov_f.T), *obs)

        def log_g(g, inputs):
            return factor_update(g, inputs)[0]

        inputs = (params, stats_t, y_t, mean_g, factor_mean, factor_base_cov, factor_slope)
        mode, information = _find_mode(log_g, inputs, mean_g, precision, num_newton_steps)
        chol_info = jnp.linalg.cholesky(information)
        diff = mode - mean_g
        loglik = (log_g(mode, inputs) - 0.5 * diff @ precision @ diff - jnp.sum(jnp.log(jnp.diagonal(chol_g)))
                  - jnp.sum(jnp.log(jnp.diagonal(chol_info))))
        cov_gg = jax.scipy.linalg.cho_solve((chol_info, True), eye_g)
        cov_gg = 0.5 * (cov_gg + cov_gg.T)
        _, f_mean, f_cov = factor_update(mode, inputs)
        slope = jax.jacfwd(lambda g: factor_update(g, inputs)[1])(mode)        # G = d m_f / d g
        cross = slope @ cov_gg
        cov_ff = f_cov + cross @ slope.T
        cov = _stack_state_cov(0.5 * (cov_ff + cov_ff.T), cross, cov_gg)
        return jnp.where(jnp.isnan(loglik), -jnp.inf, loglik), jnp.concatenate([f_mean, mode]), cov

    def predictive_moments(mean_g, cov_g, a_f, p_ff, cov_fg_next):
        """Gaussian moments of the predictive law of x_t (for the smoother), factor variance E[exp(h_t)]."""
        # E[e^{h}] = e^{m_h + V_h / 2}: the factor VAR's moments at the log-variance m_h + V_h / 2.
        f_mean, cov_ff = factor_moments(Phi_f, mean_g[:k] + 0.5 * jnp.diagonal(cov_g)[:k], a_f, p_ff)
        return jnp.concatenate([f_mean, mean_g]), _stack_state_cov(cov_ff, cov_fg_next, cov_g)

    # Constant idiosyncratic variances: steps after the first work in the K-dimensional form of
    # factor_space_data, with closed-form derivatives (O(K^3) per Newton iteration whatever N). Its GLS
    # projection is that of a complete row; with missing returns every step takes the general update, on
    # the observed assets (model.has_missing is set by bind_data where y is traced).
    fast = model.idiosyncratic == "constant" and not (model.has_missing or has_missing_values(y))
    if fast:
        reduced = factor_space_data(params.lambda_r, params.sigma2, y)
    scan_seq = (reduced.gls, reduced.const) if fast else stats_seq

    def factor_space_update(stats_t, mean_g, cov_g, factor_mean, factor_base_cov, factor_slope, basis):
        """The Bellman step of ``update`` through `_factor_space_mode`."""
        gls_t, const_t = stats_t
        chol_g = cholesky(cov_g)
        precision = cho_solve(chol_g, eye_g)
        precision = 0.5 * (precision + precision.T)
        inp = _FactorSpaceStep(gls_t, factor_mean, factor_slope, factor_base_cov + reduced.gls_cov, mean_g, basis)
        mode, deriv, _, chol_info = _factor_space_mode(inp, mean_g, precision, num_newton_steps)
        diff = mode - mean_g
        loglik = (const_t + deriv.value - 0.5 * diff @ precision @ diff - jnp.sum(jnp.log(jnp.diagonal(chol_g)))
                  - jnp.sum(jnp.log(jnp.diagonal(chol_info))))
        cov_gg = cho_solve(chol_info, eye_g)
        cov_gg = 0.5 * (cov_gg + cov_gg.T)
        # Factor moments at the mode: f | g ~ N(m + Sigma alpha, Sigma P W^{-1}), Sigma the prior covariance.
        u = jnp.exp(mode)
        prior_cov = factor_base_cov + jnp.einsum("j,jab->ab", u, basis)
        f_mean = factor_mean + factor_slope @ diff + prior_cov @ deriv.alpha
        f_cov = prior_cov @ deriv.precision @ reduced.gls_cov
        gain = reduced.gls_cov @ deriv.precision @ (u * deriv.basis_alpha.T + factor_slope)   # G = d m_f / d g
        cross = gain @ cov_gg
        cov_ff = 0.5 * (f_cov + f_cov.T) + cross @ gain.T
        cov = _stack_state_cov(0.5 * (cov_ff + cov_ff.T), cross, cov_gg)
        return jnp.where(jnp.isnan(loglik), -jnp.inf, loglik), jnp.concatenate([f_mean, mode]), cov

    unit_basis = jnp.eye(k)[:, :, None] * jnp.eye(k)[:, None, :]            # e_j e_j'

    def outputs(loglik, mean, cov, pred_mean, pred_cov):
        return {"pointwise_log_likelihood": loglik, "filtered_mean": mean, "filtered_covariance": cov,
                "predicted_mean": pred_mean, "predicted_covariance": pred_cov}

    def init(inputs):
        """t = 1 from the stationary law: f_1 | h_1 ~ N(0, Gamma_f(h_1))."""
        y_t, stats_t = inputs
        mean_g0, cov_g0 = var.mean, var.stationary_cov
        f_cov0 = factor_stationary_cov(Phi_f, params.mu + 0.5 * jnp.diagonal(cov_g0)[:k])
        pred_mean = jnp.concatenate([jnp.zeros(k), mean_g0])
        pred_cov = _stack_state_cov(f_cov0, jnp.zeros((k, dim_g)), cov_g0)
        if fast:   # Gamma_f(h) = sum_j e^{h_j} Gamma_f(e_j e_j'): the stationary basis in the factor-space step
            loglik, mean, cov = factor_space_update(stats_t, mean_g0, cov_g0, jnp.zeros(k), jnp.zeros((k, k)),
                                                    jnp.zeros((k, dim_g)), solve_discrete_lyapunov(Phi_f, unit_basis))
        else:
            loglik, mean, cov = update(y_t, stats_t, mean_g0, cov_g0, jnp.zeros(k), jnp.zeros((k, k)),
                                       jnp.zeros((k, dim_g)), True)
        return (mean, cov), outputs(loglik, mean, cov, pred_mean, pred_cov)

    def step(carry, inputs):
        mean_prev, cov_prev = carry
        y_t, stats_t = inputs
        a_f, a_g = mean_prev[:k], mean_prev[k:]
        p_ff, p_fg, p_gg = cov_prev[:k, :k], cov_prev[:k, k:], cov_prev[k:, k:]
        mean_g, cov_g = log_variance_moments(var, a_g, p_gg)
        cross = p_fg @ var.trans.T                                             # Cov(f_{t-1}, g_t)
        slope = jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(cov_g), True), cross.T).T  # B
        # f_{t-1} | g_t ~ N(a_f + B (g_t - m_g), P_ff - B Cov(g_t, f_{t-1})), pushed through the factor VAR;
        # the shock diag(e^{h_t}) is added inside the update, where h_t varies.
        factor_loc, base_cov = propagate_factors(Phi_f, a_f, p_ff - slope @ cross.T)
        factor_slope = factor_mean(Phi_f, slope.T).T                           # Phi_f B (the mean is linear)
        pred_mean, pred_cov = predictive_moments(mean_g, cov_g, a_f, p_ff, factor_mean(Phi_f, cross.T).T)
        base_cov = 0.5 * (base_cov + base_cov.T)
        if fast:
            loglik, mean, cov = factor_space_update(stats_t, mean_g, cov_g, factor_loc, base_cov, factor_slope,
                                                    unit_basis)
        else:
            loglik, mean, cov = update(y_t, stats_t, mean_g, cov_g, factor_loc, base_cov, factor_slope, False)
        return (mean, cov), outputs(loglik, mean, cov, pred_mean, pred_cov)

    return _driver.run_filter(DFSVBellmanResult, init, step, (y, scan_seq))


def bellman_smoother(model, params, out: DFSVBellmanResult):
    r"""Smoothed means and covariances of the joint state from a Bellman filter pass.

    The Rauch–Tung–Striebel backward pass over the filtered modes and covariances, with the transition
    $F = \mathrm{blockdiag}(\Phi_f, T)$ and the moment-matched predictive covariances (factor variance
    $E[e^{h_t}] = e^{m_h + V_h/2}$): $J_t = P_t F' P_{t+1|t}^{-1}$,
    $a_{t|T} = a_t + J_t (a_{t+1|T} - a_{t+1|t})$, $P_{t|T} = P_t + J_t (P_{t+1|T} - P_{t+1|t}) J_t'$,
    run by the package's one RTS pass ([`rts_smoother`][bayesvol.filters.rts_smoother]).
    """
    var = log_variance_var(params, model.idiosyncratic == "sv")
    k = model.num_factors
    dim = k + var.mean.shape[0]
    trans = jnp.zeros((dim, dim)).at[:k, :k].set(params.Phi_f).at[k:, k:].set(var.trans)
    return rts_smoother(out, jnp.broadcast_to(trans, (out.filtered_mean.shape[0], dim, dim)))
