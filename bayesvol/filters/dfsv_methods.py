"""Likelihoods and state estimates of [`DFSV`][bayesvol.models.DFSV] by the Bellman filter and the
Rao-Blackwellised particle filter.

`bellman_loglik` and `particle_loglik` (with `particle_diagnostics`) are the pointwise
log-likelihoods behind ``method="bellman"`` and ``method="pf"`` of [`bayesvol.fit`][bayesvol.fit] and
[`bayesvol.log_likelihood`][bayesvol.log_likelihood]; [`filter_states`][bayesvol.filters.dfsv_methods.filter_states]
returns the filtered and smoothed factors and log-variances.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesvol.filters.dfsv_bellman import bellman_filter, bellman_smoother
from bayesvol.filters.rbpf import particle_smoother, rao_blackwellised_particle_filter
from bayesvol.models._base import as_params

__all__ = ["DFSVStates", "bellman_loglik", "filter_states", "particle_diagnostics", "particle_loglik"]


# --- likelihoods for bayesvol.fit / bayesvol.log_likelihood ----------------------------------------
# Compiled once per model, size and setting; bayesvol.fit traces through them inside its own jit.
_bellman_jit = jax.jit(bellman_filter, static_argnums=(0, 3))
_particle_jit = jax.jit(rao_blackwellised_particle_filter, static_argnums=(0, 4, 5, 6))
_bellman_smoother_jit = jax.jit(bellman_smoother, static_argnums=0)
_particle_smoother_jit = jax.jit(particle_smoother, static_argnums=(0, 5))

# Independent replications used to measure the Monte Carlo spread of the particle log-likelihood.
MC_REPLICATIONS = 10


def bellman_loglik(model, params, y, num_newton_steps: int = 8):
    """Pointwise Bellman-filter log-likelihood (Laplace approximation per step), shape (T,).

    Differentiable; second derivatives are not exact (see the mode search of
    [`bayesvol.filters.dfsv_bellman.bellman_filter`][bayesvol.filters.dfsv_bellman.bellman_filter]), so standard errors
    take the Hessian by differences of the gradient.
    """
    params = model.check_parameters(params, y.shape[1])
    return _bellman_jit(model, params, y, int(num_newton_steps)).pointwise_log_likelihood


def particle_diagnostics(model, params, y, num_particles: int = 1000, seed: int = 0, ess_threshold: float = 0.5):
    """Monte Carlo spread of the particle log-likelihood at ``params``: its standard deviation over
    `MC_REPLICATIONS` independent seeds, and a note on reading particle-filter estimates."""
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), MC_REPLICATIONS)
    params = model.check_parameters(params, y.shape[1])
    values = np.asarray([float(_particle_jit(model, params, y, key, int(num_particles), float(ess_threshold),
                                             False).pointwise_log_likelihood.sum()) for key in keys])
    return {"loglik_mc_sd": float(np.std(values, ddof=1)), "loglik_mc_replications": MC_REPLICATIONS,
            "loglik_note": "the particle-filter log-likelihood is a Monte Carlo estimate with systematic resampling, "
                           "a piecewise smooth function of the parameters for a fixed seed; BFGS may stop with "
                           "'precision loss' close to the optimum, and estimates that differ by less than about "
                           "loglik_mc_sd are not distinguishable"}


def particle_loglik(model, params, y, num_particles: int = 1000, seed: int = 0, ess_threshold: float = 0.5):
    """Pointwise Rao-Blackwellised particle-filter estimate of ``log p(r_t | r_{1:t-1})``, shape (T,).

    The random numbers are fixed by ``seed`` (common random numbers across parameter values). The gradient
    used by [`bayesvol.fit`][bayesvol.fit] holds the resampling indices fixed (it is the gradient of the smooth piece
    of the surface the current point lies on).
    """
    params = model.check_parameters(params, y.shape[1])
    return _particle_jit(model, params, y, jax.random.PRNGKey(seed), int(num_particles), float(ess_threshold),
                         False).pointwise_log_likelihood


# --- the user-facing state estimates ----------------------------------------------------------------
class DFSVStates(NamedTuple):
    """Filtered and smoothed factors and log-variances from one estimator (arrays of shape (T, K) or (T, N)).

    ``*_sd`` are posterior standard deviations (Bellman: from the inverse curvature; particle filter: of the
    particle mixture). ``h_id_*`` are ``None`` under constant idiosyncratic variances; ``*_smoothed`` are
    ``None`` when smoothing was not requested. ``pointwise_log_likelihood`` holds the log-likelihood terms
    (T,), ``log_likelihood`` their sum (``loglik`` is the former name of the pointwise terms).
    """

    method: str
    pointwise_log_likelihood: np.ndarray
    f_filtered: np.ndarray
    f_filtered_sd: np.ndarray
    h_filtered: np.ndarray
    h_filtered_sd: np.ndarray
    h_id_filtered: np.ndarray | None = None
    f_smoothed: np.ndarray | None = None
    f_smoothed_sd: np.ndarray | None = None
    h_smoothed: np.ndarray | None = None
    h_smoothed_sd: np.ndarray | None = None
    h_id_smoothed: np.ndarray | None = None

    @property
    def log_likelihood(self) -> float:
        """The log-likelihood: the sum of `pointwise_log_likelihood`."""
        return float(np.sum(self.pointwise_log_likelihood))

    @property
    def loglik(self) -> np.ndarray:
        """Former name of `pointwise_log_likelihood`."""
        return self.pointwise_log_likelihood


def filter_states(model, params, y, method: str = "bellman", *, smooth: bool = True, seed: int = 0,
                  num_particles: int = 1000, num_trajectories: int = 100, num_newton_steps: int = 8,
                  ess_threshold: float = 0.5) -> DFSVStates:
    """Filtered (and smoothed) factors and log-variances at given parameters.

    Parameters
    ----------
    model : bayesvol.models.DFSV
    params : DFSVParams or dict
        E.g. ``bayesvol.fit(...).params``.
    y : array_like or DataFrame
        Returns (T, N).
    method : {"bellman", "pf"}
        Bellman filter (with the RTS-type smoother) or the Rao-Blackwellised particle filter (with backward
        simulation of ``num_trajectories`` paths).
    smooth : bool
        Also compute smoothed estimates.
    seed : int
        Particle filter setting: seed of its random numbers.
    num_particles : int
        Particle filter setting: number of particles.
    num_trajectories : int
        Particle filter setting: number of paths drawn by backward simulation for the smoothed estimates.
    ess_threshold : float
        Particle filter setting: resample when the effective sample size falls below
        ``ess_threshold * num_particles``.
    num_newton_steps : int
        Bellman filter setting.

    Returns
    -------
    DFSVStates

    Examples
    --------
    >>> import numpy as np
    >>> import bayesvol
    >>> from bayesvol.filters.dfsv_methods import filter_states
    >>> model = bayesvol.models.DFSV(num_factors=1)
    >>> params = {"lambda_r": np.array([[1.0], [0.8], [0.5]]), "Phi_f": np.array([[0.2]]),
    ...           "Phi_h": np.array([[0.95]]), "mu": np.array([-0.5]), "Q_h": np.array([[0.04]]),
    ...           "sigma2": np.array([0.2, 0.3, 0.4])}
    >>> sim = bayesvol.simulate(model, params, num_timesteps=100, seed=1)
    >>> states = filter_states(model, params, sim.y)
    >>> states.f_smoothed.shape
    (100, 1)
    """
    if method not in ("bellman", "pf"):
        raise ValueError(f"method must be 'bellman' or 'pf', got {method!r}")
    model = model.bind_data(y)
    data = model.validate_data(y)
    params = model.check_parameters(as_params(model, params), data.values.shape[1])
    y = jnp.asarray(data.values)
    k = model.num_factors
    sv = model.idiosyncratic == "sv"
    if method == "bellman":
        out = _bellman_jit(model, params, y, int(num_newton_steps))
        sd = jnp.sqrt(jnp.diagonal(out.filtered_covariance, axis1=-2, axis2=-1))
    else:
        key_filter, key_smooth = jax.random.split(jax.random.PRNGKey(seed))
        out = _particle_jit(model, params, y, key_filter, int(num_particles), float(ess_threshold), bool(smooth))
        sd = jnp.sqrt(out.filtered_variance)
    # Both filters give moments of the joint state (f, h[, h_id]).
    result = dict(method=method, pointwise_log_likelihood=out.pointwise_log_likelihood,
                  f_filtered=out.filtered_mean[:, :k], f_filtered_sd=sd[:, :k],
                  h_filtered=out.filtered_mean[:, k:2 * k], h_filtered_sd=sd[:, k:2 * k],
                  h_id_filtered=out.filtered_mean[:, 2 * k:] if sv else None)
    if smooth and method == "bellman":
        mean, cov = _bellman_smoother_jit(model, params, out)
        sd = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
        result.update(f_smoothed=mean[:, :k], f_smoothed_sd=sd[:, :k], h_smoothed=mean[:, k:2 * k],
                      h_smoothed_sd=sd[:, k:2 * k], h_id_smoothed=mean[:, 2 * k:] if sv else None)
    elif smooth:
        g_mean, g_var, f_mean, f_var = _particle_smoother_jit(model, params, y, out, key_smooth, int(num_trajectories))
        result.update(f_smoothed=f_mean, f_smoothed_sd=jnp.sqrt(f_var), h_smoothed=g_mean[:, :k],
                      h_smoothed_sd=jnp.sqrt(g_var[:, :k]), h_id_smoothed=g_mean[:, k:] if sv else None)
    return DFSVStates(**{name: (value if isinstance(value, str) or value is None else np.asarray(value))
                         for name, value in result.items()})
