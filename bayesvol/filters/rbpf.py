r"""Rao-Blackwellised particle filter and backward-simulation smoother for [`DFSV`][bayesvol.models.DFSV].

Particles cover the log-variances $g_t = (h_t[, h^{id}_t])$ and move by their state equation
(`bayesvol.models._dfsv_state.log_variance_mean`); each carries a Kalman filter of the factors given its
log-variance path, predicted by `factor_moments`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

import bayesvol.filters._driver as _driver
import bayesvol.models._dfsv_kalman as kalman
from bayesvol.filters.resampling import effective_sample_size, normalise_log_weights, systematic_resample
from bayesvol.models._dfsv_state import factor_moments, factor_stationary_cov, log_variance_mean, log_variance_var
from bayesvol.models._linalg import solve_lower

__all__ = ["RaoBlackwellisedFilterResult", "particle_smoother", "rao_blackwellised_particle_filter"]


# --- the Rao-Blackwellised particle filter ---------------------------------------------------------
class RaoBlackwellisedFilterResult(NamedTuple):
    """Output of [`rao_blackwellised_particle_filter`][bayesvol.filters.rbpf.rao_blackwellised_particle_filter] (``T``
steps; joint state
    $x_t = (f_t, h_t[, h^{id}_t])$ of size ``n``, log-variances $g_t = (h_t[, h^{id}_t])$ of size
    ``dim_g``).

    Attributes
    ----------
    log_likelihood : jax.Array
        Estimate of $\\log p(r_{1:T} \\mid \\theta)$, the sum of ``pointwise_log_likelihood``.
    pointwise_log_likelihood : jax.Array
        Estimates of $\\log p(r_t \\mid r_{1:t-1}, \\theta)$, shape ``(T,)``.
    filtered_mean, filtered_variance : jax.Array
        Filtered means and elementwise variances of the joint state, shape ``(T, n)``: for the factors the
        mixtures of the particles' Kalman moments, for the log-variances the weighted particle moments.
    ess : jax.Array
        Effective sample size of the weights after step ``t``, shape ``(T,)``.
    resampled : jax.Array
        Whether the particles were resampled before moving to ``t`` (always ``False`` at ``t = 0``).
    particles, log_weights : jax.Array or None
        With ``store_particles=True``: the log-variance particles ``(T, M, dim_g)`` and their normalised
        log-weights ``(T, M)`` after each step; else ``None``.

    The older name ``loglik`` (the pointwise terms) stays readable.
    """

    log_likelihood: jax.Array
    pointwise_log_likelihood: jax.Array
    filtered_mean: jax.Array
    filtered_variance: jax.Array
    ess: jax.Array
    resampled: jax.Array
    particles: jax.Array | None = None
    log_weights: jax.Array | None = None

    loglik = _driver.alias("pointwise_log_likelihood")


def rao_blackwellised_particle_filter(model, params, y, key, num_particles: int = 1000, ess_threshold: float = 0.5,
                                      store_particles: bool = False) -> RaoBlackwellisedFilterResult:
    r"""Particle filter over the log-variances with a Kalman filter over the factors in each particle.

    Parameters
    ----------
    model : bayesvol.models.DFSV
    params : DFSVParams
    y : jax.Array
        Returns (T, N).
    key : jax.Array
        PRNG key; the same key gives the same random numbers at every parameter value (common random
        numbers for maximum likelihood).
    num_particles : int
    ess_threshold : float
        Resample (systematically) when the effective sample size falls to ``ess_threshold * num_particles``.
    store_particles : bool
        Keep the log-variance particles and log-weights of every step (for smoothing), O(T M dim) memory.

    Returns
    -------
    RaoBlackwellisedFilterResult
        ``pointwise_log_likelihood`` (T,): estimates of $\log p(r_t \mid r_{1:t-1})$; filtered means
        and variances of the joint state $(f_t, g_t)$ (for $f_t$ mixtures of the particles'
        Kalman moments); the ESS per step.

    Notes
    -----
    Particles $g^i_t$ move by the state equation of the log-variances (bootstrap proposal). Each carries
    the Kalman filter of the factors given its log-variance path, whose one-step predictive density
    $p(r_t \mid r_{1:t-1}, g^i_{1:t})$ is the weight: the factors are integrated out exactly, so the
    particles only need to cover the ``K`` (or ``K + N``) log-variances. The product of the averaged weights
    is an unbiased estimate of the likelihood. The filter is an ``init`` (draws from the stationary law) and
    a ``step`` run by the filter driver (`bayesvol.filters._driver`). Random numbers: ``key`` splits into
    a key for the first draws and a key whose ``fold_in`` with ``t`` splits into the resampling and the move
    keys of step ``t``.
    """
    k = model.num_factors
    y = jnp.asarray(y)
    num = num_particles
    var = log_variance_var(params, model.idiosyncratic == "sv")
    dim_g = var.mean.shape[0]
    chol_q = jnp.linalg.cholesky(var.cov)
    chol_0 = jnp.linalg.cholesky(var.stationary_cov)
    Phi_f = params.Phi_f
    log_num = math.log(num)
    # Missing returns (NaN) enter with precision 0: the Kalman update on the observed assets of each row.
    if model.idiosyncratic == "constant":
        stats = kalman.observation_stats(params.lambda_r, params.sigma2, y)
        observed = (stats.gram, stats.score, stats.quad, stats.logdet, stats.num_assets)
    else:   # the statistics depend on each particle's h_id: computed in the step from the returns
        observed = y

    def weigh(g, pred_mean, pred_cov, observed_t):
        if model.idiosyncratic == "constant":
            gram, score, quad, logdet, count = observed_t
        else:
            seen = ~jnp.isnan(observed_t)
            returns = jnp.where(seen, observed_t, 0.0)
            idio = jnp.exp(g[:, k:])
            scaled = jnp.where(seen[:, None], params.lambda_r, 0.0)[None] / idio[:, :, None]
            gram = jnp.einsum("nik,il->nkl", scaled, params.lambda_r)
            score = jnp.einsum("nik,i->nk", scaled, returns)
            quad = jnp.sum(returns ** 2 / idio, -1)
            logdet = jnp.sum(jnp.where(seen, g[:, k:], 0.0), -1)
            count = jnp.sum(seen).astype(returns.dtype)
        return kalman.update_with_stats(pred_mean, pred_cov, gram, score, quad, logdet, count)

    def outputs(loglik, log_w, g, mean, cov, resampled):
        w = jnp.exp(log_w)
        f_mean = w @ mean
        f_var = w @ (jnp.diagonal(cov, axis1=-2, axis2=-1) + mean**2) - f_mean**2
        g_mean = w @ g
        out = {"pointwise_log_likelihood": loglik, "filtered_mean": jnp.concatenate([f_mean, g_mean]),
               "filtered_variance": jnp.concatenate([f_var, w @ g**2 - g_mean**2]),
               "ess": effective_sample_size(log_w), "resampled": resampled}
        if store_particles:
            out.update(particles=g, log_weights=log_w)
        return out

    key_first, key_scan = jax.random.split(key)

    def init(inputs):
        _, observed_0 = inputs
        g = var.mean + jax.random.normal(key_first, (num, dim_g)) @ chol_0.T
        loglik_i, mean, cov = weigh(g, jnp.zeros((num, k)), factor_stationary_cov(Phi_f, g[:, :k]), observed_0)
        log_w, loglik = normalise_log_weights(loglik_i - log_num)
        return (g, mean, cov, log_w), outputs(loglik, log_w, g, mean, cov, jnp.array(False))

    def step(carry, inputs):
        g, mean, cov, log_w = carry
        t, observed_t = inputs
        key_resample, key_move = jax.random.split(jax.random.fold_in(key_scan, t))
        resample = effective_sample_size(log_w) <= ess_threshold * num
        idx = jnp.where(resample, systematic_resample(key_resample, log_w), jnp.arange(num))
        g, mean, cov = g[idx], mean[idx], cov[idx]
        log_w = jnp.where(resample, -log_num, log_w)
        g = log_variance_mean(var, g) + jax.random.normal(key_move, (num, dim_g)) @ chol_q.T
        pred_mean, pred_cov = factor_moments(Phi_f, g[:, :k], mean, cov)
        loglik_i, mean, cov = weigh(g, pred_mean, pred_cov, observed_t)
        log_w, loglik = normalise_log_weights(log_w + loglik_i)
        return (g, mean, cov, log_w), outputs(loglik, log_w, g, mean, cov, resample)

    return _driver.run_filter(RaoBlackwellisedFilterResult, init, step, (jnp.arange(y.shape[0]), observed))


def particle_smoother(model, params, y, out: RaoBlackwellisedFilterResult, key, num_trajectories: int = 100):
    r"""Smoothed log-variances and factors by backward simulation over a stored particle filter pass.

    Draws ``num_trajectories`` log-variance paths backwards (FFBSi): at ``t`` the ancestor of a trajectory at
    $g_{t+1}$ is drawn with probability proportional to $W^i_t\, p(g_{t+1} \mid g^i_t)$. The
    smoothed factors average, over the trajectories, the Kalman (RTS) smoother given each path. The backward
    weights use the log-variance transition only; this is exact when $\Phi_f = 0$ and an approximation
    otherwise, since the factor filter then depends on the whole log-variance path.

    Returns ``(g_mean, g_var, f_mean, f_var)``, each (T, dim).
    """
    k = model.num_factors
    var = log_variance_var(params, model.idiosyncratic == "sv")
    chol_q = jnp.linalg.cholesky(var.cov)
    key_last, key_scan = jax.random.split(key)
    last_idx = jax.random.categorical(key_last, out.log_weights[-1], shape=(num_trajectories,))
    last = out.particles[-1][last_idx]

    def step(g_next, inputs):
        particles, log_w, key_t = inputs
        resid = g_next[:, None, :] - log_variance_mean(var, particles)[None]
        z = solve_lower(chol_q, resid, vector=True)
        log_b = log_w[None] - 0.5 * jnp.sum(z**2, -1)
        idx = jax.random.categorical(key_t, log_b, axis=-1)
        g_t = particles[idx]
        return g_t, g_t

    keys = jax.random.split(key_scan, y.shape[0] - 1)
    _, paths = lax.scan(step, last, (out.particles[:-1], out.log_weights[:-1], keys), reverse=True)
    paths = jnp.concatenate([paths, last[None]])                 # (T, S, dim_g)
    idio = params.sigma2 if model.idiosyncratic == "constant" else None

    def factor_smooth(path):
        idio_var = idio if idio is not None else jnp.exp(path[:, k:])
        filt = kalman.filter_factors(params.lambda_r, params.Phi_f, path[:, :k], idio_var, y)
        mean, cov = kalman.smooth_factors(params.Phi_f, filt)
        return mean, jnp.diagonal(cov, axis1=-2, axis2=-1)

    f_means, f_vars = jax.vmap(factor_smooth, in_axes=1)(paths)
    f_mean = f_means.mean(0)
    f_var = (f_vars + f_means**2).mean(0) - f_mean**2
    return paths.mean(1), paths.var(1), f_mean, f_var
