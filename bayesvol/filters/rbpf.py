r"""Rao-Blackwellised particle filter and backward-simulation smoother for :class:`~bayesvol.models.DFSV`.

Particles cover the log-variances :math:`g_t = (h_t[, h^{id}_t])` and move by their state equation
(:func:`bayesvol.models._dfsv_state.log_variance_mean`); each carries a Kalman filter of the factors given its
log-variance path, predicted by :func:`~bayesvol.models._dfsv_state.factor_moments`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

import bayesvol.models._dfsv_kalman as kalman
from bayesvol.filters.resampling import effective_sample_size, normalise_log_weights, systematic_resample
from bayesvol.models._dfsv_linalg import solve_lower
from bayesvol.models._dfsv_state import factor_moments, factor_stationary_cov, log_variance_mean, log_variance_var

__all__ = ["ParticleOutput", "particle_smoother", "rao_blackwellised_particle_filter"]


# --- the Rao-Blackwellised particle filter ---------------------------------------------------------
class ParticleOutput(NamedTuple):
    """Rao-Blackwellised particle filter output (see :func:`rao_blackwellised_particle_filter`)."""

    pointwise_log_likelihood: jnp.ndarray
    f_mean: jnp.ndarray
    f_var: jnp.ndarray
    g_mean: jnp.ndarray
    g_var: jnp.ndarray
    ess: jnp.ndarray
    particles: jnp.ndarray | None
    log_weights: jnp.ndarray | None

    @property
    def log_likelihood(self):
        """The log-likelihood: the sum of :attr:`pointwise_log_likelihood`."""
        return jnp.sum(self.pointwise_log_likelihood)

    @property
    def loglik(self):
        """Former name of :attr:`pointwise_log_likelihood`."""
        return self.pointwise_log_likelihood


def rao_blackwellised_particle_filter(model, params, y, key, num_particles: int = 1000,
                                      ess_threshold: float = 0.5, store_particles: bool = False) -> ParticleOutput:
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
    ParticleOutput
        ``pointwise_log_likelihood`` (T,): estimates of :math:`\log p(r_t \mid r_{1:t-1})`; filtered means
        and variances of :math:`f_t` (mixtures of the particles' Kalman moments) and :math:`g_t`; the ESS per step.

    Notes
    -----
    Particles :math:`g^i_t` move by the state equation of the log-variances (bootstrap proposal). Each carries
    the Kalman filter of the factors given its log-variance path, whose one-step predictive density
    :math:`p(r_t \mid r_{1:t-1}, g^i_{1:t})` is the weight: the factors are integrated out exactly, so the
    particles only need to cover the ``K`` (or ``K + N``) log-variances. The product of the averaged weights
    is an unbiased estimate of the likelihood.
    """
    k = model.num_factors
    y = jnp.asarray(y)
    num = num_particles
    var = log_variance_var(params, model.idiosyncratic == "sv")
    dim_g = var.mean.shape[0]
    chol_q = jnp.linalg.cholesky(var.cov)
    chol_0 = jnp.linalg.cholesky(var.stationary_cov)
    Phi_f = params.Phi_f
    if model.idiosyncratic == "constant":
        stats = kalman.observation_stats(params.lambda_r, params.sigma2, y)
    log_num = math.log(num)

    def weigh(g, pred_mean, pred_cov, t):
        if model.idiosyncratic == "constant":
            gram, score, quad, logdet = stats.gram[t], stats.score[t], stats.quad[t], stats.logdet[t]
        else:
            idio = jnp.exp(g[:, k:])
            scaled = params.lambda_r[None] / idio[:, :, None]
            gram = jnp.einsum("nik,il->nkl", scaled, params.lambda_r)
            score = jnp.einsum("nik,i->nk", scaled, y[t])
            quad = jnp.sum(y[t] ** 2 / idio, -1)
            logdet = jnp.sum(g[:, k:], -1)
        return kalman.update_with_stats(pred_mean, pred_cov, gram, score, quad, logdet, y.shape[1])

    def summarise(log_w, g, mean, cov):
        w = jnp.exp(log_w)
        f_mean = w @ mean
        f_var = w @ (jnp.diagonal(cov, axis1=-2, axis2=-1) + mean**2) - f_mean**2
        g_mean = w @ g
        return f_mean, f_var, g_mean, w @ g**2 - g_mean**2

    key_first, key_scan = jax.random.split(key)
    g = var.mean + jax.random.normal(key_first, (num, dim_g)) @ chol_0.T
    loglik_i, mean, cov = weigh(g, jnp.zeros((num, k)), factor_stationary_cov(Phi_f, g[:, :k]), 0)
    log_w, loglik_1 = normalise_log_weights(loglik_i - log_num)
    first = (loglik_1,) + summarise(log_w, g, mean, cov) + (effective_sample_size(log_w),)

    def step(carry, t):
        g, mean, cov, log_w = carry
        key_t = jax.random.fold_in(key_scan, t)
        key_resample, key_move = jax.random.split(key_t)
        resample = effective_sample_size(log_w) <= ess_threshold * num
        idx = jnp.where(resample, systematic_resample(key_resample, log_w), jnp.arange(num))
        g, mean, cov = g[idx], mean[idx], cov[idx]
        log_w = jnp.where(resample, -log_num, log_w)
        g = log_variance_mean(var, g) + jax.random.normal(key_move, (num, dim_g)) @ chol_q.T
        pred_mean, pred_cov = factor_moments(Phi_f, g[:, :k], mean, cov)
        loglik_i, mean, cov = weigh(g, pred_mean, pred_cov, t)
        log_w, loglik_t = normalise_log_weights(log_w + loglik_i)
        out = (loglik_t,) + summarise(log_w, g, mean, cov) + (effective_sample_size(log_w),)
        stored = (g, log_w) if store_particles else ()
        return (g, mean, cov, log_w), out + stored

    _, rest = lax.scan(step, (g, mean, cov, log_w), jnp.arange(1, y.shape[0]))
    seq = [jnp.concatenate([a[None], b]) for a, b in zip(first, rest[:6], strict=True)]
    particles = jnp.concatenate([g[None], rest[6]]) if store_particles else None
    weights = jnp.concatenate([log_w[None], rest[7]]) if store_particles else None
    return ParticleOutput(*seq, particles, weights)


def particle_smoother(model, params, y, out: ParticleOutput, key, num_trajectories: int = 100):
    r"""Smoothed log-variances and factors by backward simulation over a stored particle filter pass.

    Draws ``num_trajectories`` log-variance paths backwards (FFBSi): at ``t`` the ancestor of a trajectory at
    :math:`g_{t+1}` is drawn with probability proportional to :math:`W^i_t\, p(g_{t+1} \mid g^i_t)`. The
    smoothed factors average, over the trajectories, the Kalman (RTS) smoother given each path. The backward
    weights use the log-variance transition only; this is exact when :math:`\Phi_f = 0` and an approximation
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
