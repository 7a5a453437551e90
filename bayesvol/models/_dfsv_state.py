r"""State equations of [`DFSV`][bayesvol.models.DFSV], each written once.

The latent state is $x_t = (f_t, g_t)$ with $g_t = (h_t[, h^{id}_t])$ the log-variances. Two
recursions drive it:

* the log-variance VAR(1), $g_t = m + T (g_{t-1} - m) + e_t$, $e_t \sim N(0, Q_g)$, with
  $m = (\mu[, \mu^{id}])$, $T = \mathrm{blockdiag}(\Phi_h[, \mathrm{diag}\,\phi^{id}])$ and
  $Q_g = \mathrm{blockdiag}(Q_h[, \mathrm{diag}(\sigma^{id})^2])$, started from its stationary law
  (`LogVarianceVAR`, `log_variance_mean`, `log_variance_moments`);
* the factor VAR(1) given the log-variances, $f_t = \Phi_f f_{t-1} + \nu_t$,
  $\nu_t \sim N(0, \mathrm{diag}(e^{h_t}))$, started from $N(0, \Gamma_f(h_1))$
  (`factor_mean`, `factor_moments`, `factor_stationary_cov`).

The model's ``initial``/``transition`` laws (`JointStateLaw`), the simulator and the NumPyro program's
paths (`log_variance_path`, `factor_path`), the Kalman filter of the factors, the Bellman filter
and the Rao-Blackwellised particle filter all call these functions; none restates a recursion.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax import lax
from numpyro.distributions import constraints

from bayesvol.models._base import scale_free_supports
from bayesvol.models._dfsv_priors import solve_discrete_lyapunov
from bayesvol.models._linalg import mm, mT, mv

__all__ = ["JointStateLaw", "LogVarianceVAR", "conditional_covariance", "factor_mean", "factor_moments",
           "factor_path", "factor_shock_scale", "factor_shock_variance", "factor_stationary_cov",
           "idiosyncratic_variance", "log_variance_mean", "log_variance_moments", "log_variance_path",
           "log_variance_var", "propagate_factors", "rescaled_params",
           "simulate_from_shocks"]


# --- the log-variance VAR(1) ---------------------------------------------------------------------
class LogVarianceVAR(NamedTuple):
    """The Gaussian VAR(1) of ``g_t = (h_t[, h_id_t])``: ``g_t = mean + trans (g_{t-1} - mean) + e_t``,
    ``e_t ~ N(0, cov)``, and its stationary covariance (its stationary mean is ``mean``)."""

    mean: jnp.ndarray
    trans: jnp.ndarray
    cov: jnp.ndarray
    stationary_cov: jnp.ndarray


def log_variance_var(params, idiosyncratic_sv: bool) -> LogVarianceVAR:
    """`LogVarianceVAR` of the factor log-variances, joined by the idiosyncratic ones with ``idiosyncratic_sv``
    (block-diagonal: the two sets of log-variances are independent)."""
    mean, trans, cov = params.mu, params.Phi_h, params.Q_h
    stationary = solve_discrete_lyapunov(params.Phi_h, params.Q_h)
    if idiosyncratic_sv:
        k, n = params.mu.shape[0], params.mu_id.shape[0]
        mean = jnp.concatenate([mean, params.mu_id])
        trans = jnp.zeros((k + n, k + n)).at[:k, :k].set(params.Phi_h).at[k:, k:].set(jnp.diag(params.phi_id))
        cov = jnp.zeros((k + n, k + n)).at[:k, :k].set(params.Q_h).at[k:, k:].set(jnp.diag(params.sigma_id**2))
        id_var = params.sigma_id**2 / (1.0 - params.phi_id**2)
        stationary = jnp.zeros((k + n, k + n)).at[:k, :k].set(stationary).at[k:, k:].set(jnp.diag(id_var))
    return LogVarianceVAR(mean, trans, cov, stationary)


def log_variance_mean(var: LogVarianceVAR, prev):
    """``E[g_t | g_{t-1}] = mean + trans (g_{t-1} - mean)``; ``prev`` may carry leading batch axes."""
    return var.mean + jnp.einsum("ij,...j->...i", var.trans, prev - var.mean)


def log_variance_moments(var: LogVarianceVAR, mean_prev, cov_prev):
    """Mean and covariance of ``g_t`` when ``g_{t-1} ~ N(mean_prev, cov_prev)``: ``trans cov_prev trans' + cov``."""
    cov = var.trans @ cov_prev @ var.trans.T + var.cov
    return log_variance_mean(var, mean_prev), 0.5 * (cov + cov.T)


def log_variance_path(var: LogVarianceVAR, z):
    """Log-variance path from standard-normal innovations ``z`` (T, dim), non-centred.

    ``g_1 = mean + chol(stationary_cov) z_1`` and ``g_t = E[g_t | g_{t-1}] + chol(cov) z_t``.
    """
    first = var.mean + jnp.linalg.cholesky(var.stationary_cov) @ z[0]
    shocks = z[1:] @ jnp.linalg.cholesky(var.cov).T

    def step(g_prev, shock):
        g_t = log_variance_mean(var, g_prev) + shock
        return g_t, g_t

    _, rest = lax.scan(step, first, shocks)
    return jnp.concatenate([first[None], rest])


# --- the factor VAR(1) given the log-variances ---------------------------------------------------
def factor_mean(Phi_f, f_prev):
    """``E[f_t | f_{t-1}] = Phi_f f_{t-1}``; ``f_prev`` (..., K) may carry leading batch axes."""
    return mv(Phi_f, f_prev)


def factor_shock_variance(h):
    """Variances ``e^{h_t}`` of the factor shocks ``nu_t`` given the log-variances ``h_t`` (..., K)."""
    return jnp.exp(h)


def factor_shock_scale(h):
    """Standard deviations ``e^{h_t / 2}`` of the factor shocks (the square root of `factor_shock_variance`)."""
    return jnp.exp(0.5 * h)


def propagate_factors(Phi_f, mean_prev, cov_prev):
    """``(Phi_f m, Phi_f P Phi_f')``: the factors' law pushed through the VAR before the shock is added."""
    return factor_mean(Phi_f, mean_prev), mm(mm(Phi_f, cov_prev), Phi_f.T)


def factor_moments(Phi_f, h, mean_prev, cov_prev):
    """Mean and covariance of ``f_t`` given ``h_t`` when ``f_{t-1} ~ N(mean_prev, cov_prev)``:
    ``(Phi_f m, Phi_f P Phi_f' + diag(e^{h_t}))``. All arguments may carry leading batch axes (the Kalman
    prediction of every particle at once)."""
    mean, cov = propagate_factors(Phi_f, mean_prev, cov_prev)
    cov = cov + factor_shock_variance(h)[..., :, None] * jnp.eye(h.shape[-1])
    return mean, 0.5 * (cov + mT(cov))


def factor_stationary_cov(Phi_f, h):
    """``Gamma_f(h)``: the solution of ``G = Phi_f G Phi_f' + diag(e^h)``, the covariance of ``f_1 | h_1``
    (batched over ``h``)."""
    return solve_discrete_lyapunov(Phi_f, factor_shock_variance(h)[..., :, None] * jnp.eye(h.shape[-1]))


def factor_path(Phi_f, h, z):
    """Factor path given the log-variances, non-centred.

    ``f_1 = chol(Gamma_f(h_1)) z_1`` and ``f_t = Phi_f f_{t-1} + e^{h_t/2} z_t``.
    """
    k = h.shape[-1]
    first = jnp.linalg.cholesky(factor_stationary_cov(Phi_f, h[0])) @ z[0]

    def step(f_prev, inputs):
        h_t, z_t = inputs
        f_t = factor_mean(Phi_f, f_prev) + factor_shock_scale(h_t) * z_t
        return f_t, f_t

    _, rest = lax.scan(step, first, (h[1:], z[1:]))
    return jnp.concatenate([first[None], rest]).reshape(-1, k)


# --- the returns ---------------------------------------------------------------------------------
def idiosyncratic_variance(params, h_id):
    """Idiosyncratic variances: ``sigma2`` (constant, when ``h_id`` is ``None``) or ``exp(h_id)``."""
    if h_id is None:
        return params.sigma2
    return jnp.exp(h_id)


def conditional_covariance(lambda_r, h, idio_var):
    r"""``Lambda diag(e^{h_t}) Lambda' + Sigma_t`` per time step: the covariance of $r_t$ given
    $f_{t-1}$ and the log-variances, shape (T, N, N)."""
    common = jnp.einsum("ik,tk,jk->tij", lambda_r, factor_shock_variance(h), lambda_r)
    idio = jnp.broadcast_to(idio_var, common.shape[:-1])
    return common + idio[..., :, None] * jnp.eye(common.shape[-1])


def simulate_from_shocks(model, params, z_h, z_f, z_id, z_eps):
    """DFSV paths from standard-normal shocks (each (T, K) or (T, N)), following the simulation recipe.

    Returns ``(y, h, f, h_id)`` with ``h_id`` ``None`` under constant idiosyncratic variances.
    """
    sv = model.idiosyncratic == "sv"
    k = model.num_factors
    g = log_variance_path(log_variance_var(params, sv), jnp.concatenate([z_h, z_id], -1) if sv else z_h)
    h, h_id = g[:, :k], (g[:, k:] if sv else None)
    f = factor_path(params.Phi_f, h, z_f)
    eps = jnp.sqrt(idiosyncratic_variance(params, h_id)) * z_eps
    return f @ params.lambda_r.T + eps, h, f, h_id


# --- the joint state law (latent-state protocol) -------------------------------------------------
class JointStateLaw(dist.Distribution):
    r"""Law of the joint state $x_t = (f_t, g_t)$: $g_t$ Gaussian, then $f_t \mid g_t$.

    $g_t = (h_t[, h^{id}_t]) \sim N(g_{loc}, LL')$ and $f_t \mid h_t \sim N(f_{loc},
    \mathrm{diag}(e^{h_t}))$, or with ``stationary_start`` $N(0, \Gamma_f(h_t))$,
    $\Gamma_f(h) = \Phi_f \Gamma_f(h) \Phi_f' + \mathrm{diag}(e^{h})$. ``num_factors`` is the size
    ``K`` of $f_t$ and $h_t$.
    """

    arg_constraints = {}
    support = constraints.real_vector
    pytree_data_fields = ("f_loc", "g_loc", "g_scale_tril", "Phi_f")
    pytree_aux_fields = ("stationary_start",)

    def __init__(self, f_loc, g_loc, g_scale_tril, Phi_f, *, stationary_start=False, validate_args=None):
        self.f_loc, self.g_loc, self.g_scale_tril, self.Phi_f = f_loc, g_loc, g_scale_tril, Phi_f
        self.stationary_start = stationary_start
        k, dim_g = jnp.shape(f_loc)[-1], jnp.shape(g_loc)[-1]
        super().__init__(batch_shape=jnp.broadcast_shapes(jnp.shape(f_loc)[:-1], jnp.shape(g_loc)[:-1]),
                         event_shape=(k + dim_g,), validate_args=validate_args)

    def _factor_chol(self, h):
        if self.stationary_start:
            return jnp.linalg.cholesky(factor_stationary_cov(self.Phi_f, h))
        return factor_shock_scale(h)[..., :, None] * jnp.eye(h.shape[-1])

    def sample(self, key, sample_shape=()):
        k, dim_g = jnp.shape(self.f_loc)[-1], jnp.shape(self.g_loc)[-1]
        shape = tuple(sample_shape) + self.batch_shape
        key_h, key_f, key_id = jax.random.split(key, 3)
        z = jax.random.normal(key_h, shape + (k,))
        if dim_g > k:
            z = jnp.concatenate([z, jax.random.normal(key_id, shape + (dim_g - k,))], -1)
        g = self.g_loc + jnp.einsum("...ij,...j->...i", self.g_scale_tril, z)
        f = self.f_loc + jnp.einsum("...ij,...j->...i", self._factor_chol(g[..., :k]),
                                    jax.random.normal(key_f, shape + (k,)))
        return jnp.concatenate([jnp.broadcast_to(f, shape + (k,)), g], axis=-1)

    def log_prob(self, value):
        k = jnp.shape(self.f_loc)[-1]
        f, g = value[..., :k], value[..., k:]
        out = dist.MultivariateNormal(self.g_loc, scale_tril=self.g_scale_tril).log_prob(g)
        return out + dist.MultivariateNormal(self.f_loc, scale_tril=self._factor_chol(g[..., :k])).log_prob(f)


def rescaled_params(model, params, scale):
    r"""DFSV parameters for returns ``scale * y`` (one positive ``scale`` for all assets): the hook
    ``DFSV.rescale_params``.

    The factors scale with the returns (factor ``k`` is in the units of asset ``k``), so the factor
    log-variances shift, $\mu \to \mu + 2\ln s$, $\sigma^2 \to s^2\sigma^2$ and
    $\mu^{id} \to \mu^{id} + 2\ln s$; loadings, $\Phi_f$, $\Phi_h$, $Q_h$ and the
    idiosyncratic persistence and volatility of volatility are free of units. One scale for all assets: with a
    scale per asset $\Phi_f$ would be conjugated by the factors' scales, which leaves the support of
    ``StationaryMatrix`` (a bound on its norm) when K > 1. ``None`` when the priors' supports are not free of
    units.
    """
    shifted = ("mu",) + (("mu_id",) if model.idiosyncratic == "sv" else ())
    multiplied = ("sigma2",) if model.idiosyncratic == "constant" else ()
    if not scale_free_supports(model, multiplied=multiplied, shifted=shifted):
        return None
    log_scale = jnp.log(scale)
    if model.idiosyncratic == "constant":
        return params._replace(mu=params.mu + 2.0 * log_scale, sigma2=params.sigma2 * scale**2)
    return params._replace(mu=params.mu + 2.0 * log_scale, mu_id=params.mu_id + 2.0 * log_scale)
