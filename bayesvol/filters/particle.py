r"""Particle filters over the latent-state protocol: bootstrap and auxiliary (tangent-adapted) proposals.

An ``init`` and a small ``step`` run by the filter driver (`bayesvol.filters._driver`); results as a
NamedTuple. Everything is pure JAX in the parameters, the data and the key, so the filter runs under ``jit``,
``vmap`` (over parameter sets, data sets or keys) and ``grad``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

import bayesvol.filters._common as _common
import bayesvol.filters._driver as _driver
import bayesvol.filters._newton as _newton
import bayesvol.models._base as _base
from bayesvol.filters.resampling import (
    effective_sample_size,
    normalise_log_weights,
    smooth_resample_from_uniform,
    systematic_ancestors,
)

__all__ = ["PROPOSALS", "RANDOM_DTYPES", "RESAMPLING_SCHEMES", "ParticleFilterResult", "particle_filter"]

PROPOSALS = ("bootstrap", "auxiliary")
RESAMPLING_SCHEMES = ("systematic", "smooth")
RANDOM_DTYPES = ("float64", "float32")


class ParticleFilterResult(NamedTuple):
    """Output of [`particle_filter`][bayesvol.filters.particle_filter] (``T`` time steps).

    Attributes
    ----------
    log_likelihood : jax.Array
        Estimate of $\\log p(y_{1:T} \\mid \\theta)$, the sum of ``pointwise_log_likelihood``.
    pointwise_log_likelihood : jax.Array
        Estimates of the one-step predictive $\\log p(y_t \\mid y_{1:t-1}, \\theta)$, shape ``(T,)``.
    filtered_mean, filtered_variance : jax.Array
        Weighted particle mean and variance of $x_t \\mid y_{1:t}$, shape ``(T, *state_shape)``
        (elementwise variances for vector states).
    ess : jax.Array
        Effective sample size of the weights after step ``t`` (1 to ``num_particles``), shape ``(T,)``.
    resampled : jax.Array
        Whether the particles were resampled before moving to ``t`` (always ``False`` at ``t = 0``).
    latent_path : jax.Array or None
        With ``latent_path=True``: one path $x_{1:T}$ drawn from the filter's final weights and traced
        back through the particles' ancestors, shape ``(T, *state_shape)``; else ``None``.

    The older names ``predictive_log_likelihoods``, ``filtered_means`` and ``filtered_variances`` stay
    readable.
    """

    log_likelihood: jax.Array
    pointwise_log_likelihood: jax.Array
    filtered_mean: jax.Array
    filtered_variance: jax.Array
    ess: jax.Array
    resampled: jax.Array
    latent_path: jax.Array | None = None

    predictive_log_likelihoods = _driver.alias("pointwise_log_likelihood")
    filtered_means = _driver.alias("filtered_mean")
    filtered_variances = _driver.alias("filtered_variance")


def particle_filter(model, params, y, key=0, num_particles: int = 1000, *, proposal: str = "bootstrap",
                    resampling: str = "systematic", ess_threshold: float = 0.5,
                    num_newton_steps: int = 2, random_dtype: str = "float64",
                    latent_path: bool = False) -> ParticleFilterResult:
    r"""Particle filter for a latent-state model: likelihood estimate and filtered moments.

    Parameters
    ----------
    model : latent-state model
        Anything with ``initial(params)``, ``transition(params, x_prev, y_prev)`` and
        ``emission(params, x)`` returning NumPyro distributions that broadcast over a leading particle axis
        (e.g. [`bayesvol.models.SV`][bayesvol.models.SV]).
    params : <Model>Params or dict
        Parameter values.
    y : array_like
        Observations, leading axis time, shape ``(T, ...)``.
    key : int or jax.Array
        Seed or PRNG key. Keep it fixed across parameter values to get common random numbers (a smooth
        surface under ``resampling="smooth"``).
    num_particles : int
        Number of particles ``N`` (at least 1).
    proposal : {"bootstrap", "auxiliary"}
        ``"bootstrap"`` moves particles with the state equation and weights them by the emission density.
        ``"auxiliary"`` is the auxiliary particle filter of Pitt & Shephard (1999) with a proposal adapted
        to $y_t$ through a tangent (first-order) expansion of the log emission density around the
        transition mean; it needs a Gaussian state equation (Normal or MultivariateNormal ``transition``).
    resampling : {"systematic", "smooth"}
        Systematic resampling (unbiased likelihood estimate), or the continuous resampling of Malik & Pitt
        (2011) for scalar states, under which the estimate is continuous in the parameters with fixed random
        numbers (used for maximum likelihood).
    ess_threshold : float
        Resample when the effective sample size of the (first-stage) weights is at most
        ``ess_threshold * N``; ``1.0`` resamples at every step.
    num_newton_steps : int
        Newton steps locating the expansion point of the auxiliary proposal (0: the transition mean).
    random_dtype : {"float64", "float32"}
        Precision of the standard normals that move the particles under a Gaussian state equation. On CPU
        most of the filter's time goes into generating float64 normals; ``"float32"`` halves it, at the cost
        of normals rounded to float32 (relative error about 1e-7, tails cut beyond about 5.3 SD — far
        below the Monte Carlo error of the likelihood). Weights and likelihood stay in float64.

    latent_path : bool
        Also draw one latent path from the final weights by ancestor tracing (needs systematic resampling;
        keeps the particles and ancestors of every step, memory $O(NT)$). Inside particle marginal
        Metropolis-Hastings, this draw attached to each state of the chain makes the joint draws of
        $(\theta, x_{1:T})$ exact posterior draws (Andrieu, Doucet & Holenstein 2010).

    Returns
    -------
    ParticleFilterResult

    Raises
    ------
    ValueError
        For ``num_particles < 1``, an unknown ``proposal`` or ``resampling``, ``ess_threshold`` outside
        ``(0, 1]``, smooth resampling of a non-scalar state, or non-finite data (NaN is allowed, as a missing
        observation, for a model that declares ``supports_missing``).

    Notes
    -----
    With normalised weights $W_{t-1}^i$ on particles $x_{t-1}^i$, each step

    1. forms first-stage log-weights $\log W_{t-1}^i + \log \hat g_t(x_{t-1}^i)$ (for the bootstrap
       filter $\hat g_t \equiv 1$), normalises them to $V^i$ with log-normaliser $\log c_t$,
       and resamples ancestors from $V$ if its ESS is small (then the post-resampling weights are
       $1/N$, else $V^i$);
    2. draws $x_t^i$ from the proposal and computes the second-stage weight $w_t^i$;
    3. adds $\log c_t + \log \sum_i \bar W^i w_t^i$ (post-resampling weights $\bar W$) to the
       log-likelihood — the estimate of $\log p(y_t \mid y_{1:t-1})$.

    For the bootstrap filter $w_t = g(y_t \mid x_t)$. At a missing $y_t$ (NaN)
    $g \equiv 1$: the particles move by the state equation, the weights stay as they are and the term
    is zero. The auxiliary filter expands
    $\log g(y_t \mid x) \approx \ell(m) + \nabla^\top (x - m)$ at the transition mean $m$;
    with $p(x_t \mid x_{t-1}) = N(m, \Sigma)$ this gives the proposal $N(m + \Sigma\nabla, \Sigma)$,
    first-stage weight $\log \hat g = \ell(m) + \nabla^\top\Sigma\nabla/2$ and second-stage weight
    $\log w = \log g(y_t \mid x_t) - \ell(m) - \nabla^\top (x_t - m)$. For SV with normal errors the log
    emission density is concave in $h$, so $w \le 1$: bounded weights. The product of the
    per-step estimates is unbiased for $p(y_{1:T})$ under systematic resampling. Cost
    $O(NT)$ (plus a sort per step for smooth resampling).

    Random numbers: one uniform per step for resampling, drawn before the scan; for Gaussian moves (a
    Normal or MultivariateNormal state equation, and every auxiliary proposal) the standard normals
    $z$ with $x_t = m + L z$ are drawn for a block of steps at a time (about $2^{18}$
    numbers, at most 100 steps) by an outer scan over blocks around the inner scan over steps, so that
    generating them is one large vectorised call rather than one small call per step; other state laws
    draw from one key per step. On CPU the normals are most of the cost of the bootstrap filter.

    Examples
    --------
    >>> import jax
    >>> import bayesvol
    >>> from bayesvol.filters import particle_filter
    >>> model = bayesvol.models.SV()
    >>> params = {"mu": -1.0, "phi": 0.95, "sigma": 0.2}
    >>> y = bayesvol.simulate(model, params, 200, seed=0).y
    >>> out = particle_filter(model, params, y, key=1, num_particles=500, proposal="auxiliary")
    >>> out.pointwise_log_likelihood.shape
    (200,)

    Many parameter sets at once, with common random numbers:

    >>> import jax.numpy as jnp
    >>> grid = {"mu": jnp.full(3, -1.0), "phi": jnp.array([0.9, 0.95, 0.98]), "sigma": jnp.full(3, 0.2)}
    >>> run = lambda p: particle_filter(model, p, y, key=1, num_particles=500).log_likelihood
    >>> jax.vmap(run)(grid).shape
    (3,)
    """
    num_particles = _common.check_positive_int(num_particles, "num_particles")
    _common.check_choice(proposal, "proposal", PROPOSALS)
    _common.check_choice(resampling, "resampling", RESAMPLING_SCHEMES)
    if not isinstance(ess_threshold, int | float) or not 0.0 < float(ess_threshold) <= 1.0:
        raise ValueError(f"ess_threshold must be a number in (0, 1], got {ess_threshold!r}")
    params = _common.model_params(model, params)
    y = _common.check_observations(y, allow_missing=_common.supports_missing(model))
    key = _common.as_key(key)
    shape = _common.state_shape(model, params)
    if resampling == "smooth" and shape != ():
        raise ValueError("resampling='smooth' needs a scalar latent state; use 'systematic' for vector states")
    num_newton_steps = _common.check_nonnegative_int(num_newton_steps, "num_newton_steps")
    _common.check_choice(random_dtype, "random_dtype", RANDOM_DTYPES)
    if not isinstance(latent_path, bool):
        raise ValueError(f"latent_path must be True or False, got {latent_path!r}")
    if latent_path and resampling != "systematic":
        raise ValueError("latent_path=True needs resampling='systematic' (smooth resampling keeps no ancestry)")
    return _run(model, params, y, key, num_particles, proposal, resampling, float(ess_threshold), shape,
                num_newton_steps, random_dtype, latent_path, not _base.is_complete(y))


# The moves' standard normals are drawn for a block of steps at a time: about this many numbers per call (a
# few MB, so the block stays in cache), and at most this many steps per block.
_BLOCK_NUMBERS = 2**18
_MAX_BLOCK_STEPS = 100


def _block_length(numbers_per_step: int, num_moves: int) -> int:
    """Steps per block of random draws (at least 1, at most the number of moves when there are any)."""
    return max(1, min(_MAX_BLOCK_STEPS, _BLOCK_NUMBERS // numbers_per_step, num_moves))


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6, 7, 8, 9, 10, 11, 12))
def _run(model, params, y, key, num_particles, proposal, resampling, ess_threshold, state_shape, num_newton_steps,
         random_dtype, trace_path, gaps):
    state_ndim = len(state_shape)
    num = num_particles
    log_num = jnp.log(float(num))

    def sum_state(values):
        return values.reshape(num, -1).sum(axis=-1)

    def log_g(x, y_t):
        # With gaps, zero at a missing y_t: the weights stay as they are and the move is the state equation's.
        law = model.emission(params, x)
        values = sum_state(_base.masked_log_prob(law, y_t) if gaps else law.log_prob(y_t))
        return jnp.where(jnp.isnan(values), -jnp.inf, values)

    def tangent(prior, y_t):
        return _tangent(model, params, prior, lambda z: log_g(z, y_t), y_t, num_newton_steps, state_shape, gaps)

    # Gaussian moves (the auxiliary proposal, or a Gaussian state equation) are loc + scale z with standard
    # normals z drawn for a block of steps in one vectorised call; other state laws draw from per-step keys.
    gaussian_moves = proposal == "auxiliary" or _common.is_gaussian(
        model.transition(params, jnp.zeros((num,) + state_shape), y[0]))

    def block_noise(block_key, length):
        """Random input of ``length`` steps: standard normals, or one key per step."""
        if gaussian_moves:
            return jax.random.normal(block_key, (length, num) + state_shape, dtype=jnp.dtype(random_dtype))
        return jax.random.split(block_key, length)

    def draw(d, noise):
        """One draw per particle from a state law, given the step's random input."""
        if gaussian_moves:
            return _common.gaussian_from_normals(d, noise)
        return d.sample(noise)

    def first_stage(prior, tangent_info):
        if proposal == "bootstrap":
            return jnp.zeros(num)
        point, log_g_point, grad = tangent_info
        _, _, half_quad = _common.tangent_proposal(prior, grad, state_ndim)
        return log_g_point + sum_state(grad * (_common.gaussian_mean(prior) - point)) + half_quad

    def move(prior, y_t, noise, tangent_info):
        """New particles and their second-stage log-weights."""
        if proposal == "bootstrap":
            x = draw(prior, noise)
            return x, log_g(x, y_t)
        point, log_g_point, grad = tangent_info
        tilted, _, _ = _common.tangent_proposal(prior, grad, state_ndim)
        x = draw(tilted, noise)
        log_w = log_g(x, y_t) - log_g_point - sum_state(grad * (x - point))
        return x, jnp.where(jnp.isnan(log_w), -jnp.inf, log_w)

    def outputs(increment, mean, variance, ess, resampled, history):
        out = {"pointwise_log_likelihood": increment, "filtered_mean": mean, "filtered_variance": variance,
               "ess": ess, "resampled": resampled}
        if trace_path:
            out["history"] = history
        return out

    # Random input, split from ``key`` outside the scan: one uniform per step for systematic resampling, and
    # the moves' normals (or keys) drawn block by block (see ``_block_length``). Fixed ``key`` gives common
    # random numbers across parameters.
    num_steps = y.shape[0]
    resample_key, initial_key, block_root, tail_key = jax.random.split(key, 4)
    uniforms = jax.random.uniform(resample_key, (num_steps,), dtype=y.dtype)

    def init(inputs):
        """t = 0: N identical "parents", so no resampling; first-stage weights are equal."""
        y_0 = inputs[0]
        if proposal == "bootstrap":
            x0 = model.initial(params).sample(initial_key, (num,))
            log_w0, log_c0 = log_g(x0, y_0), 0.0
        else:
            prior0 = _common.broadcast_gaussian(model.initial(params), num)
            info0 = tangent(prior0, y_0)
            x0, log_w0 = move(prior0, y_0, block_noise(initial_key, 1)[0], info0)
            log_c0 = first_stage(prior0, info0)[0]
        increment0, log_weights0, ess0, (mean0, var0) = _weigh(jnp.full(num, -log_num), log_w0, x0, state_shape)
        history = (x0, jnp.arange(num, dtype=jnp.int32))
        return (x0, log_weights0, ess0), outputs(increment0 + log_c0, mean0, var0, ess0, jnp.array(False), history)

    def step(carry, inputs):
        x_prev, log_weights_prev, ess_prev = carry
        (y_t, y_prev, uniform), noise = inputs
        prior_prev = model.transition(params, x_prev, y_prev)
        if proposal == "auxiliary":
            info = tangent(prior_prev, y_t)
            log_first, log_c = normalise_log_weights(log_weights_prev + first_stage(prior_prev, info))
            ess_first = effective_sample_size(log_first)
        else:
            # Bootstrap: the first-stage weights are the filter weights, whose ESS the last step computed.
            info, log_first, log_c, ess_first = None, log_weights_prev, 0.0, ess_prev
        resample = jnp.array(True) if ess_threshold >= 1.0 else ess_first <= ess_threshold * num
        ancestors = None
        if resampling == "systematic":
            # lax.cond skips the resampling work on steps that keep the weights (a select under vmap).
            if proposal == "bootstrap" and not trace_path:
                x_parents = lax.cond(resample, lambda: x_prev[systematic_ancestors(uniform, log_first)],
                                     lambda: x_prev)
                prior = model.transition(params, x_parents, y_prev)
            else:
                ancestors = lax.cond(resample, lambda: systematic_ancestors(uniform, log_first),
                                     lambda: jnp.arange(num, dtype=jnp.int32))
                # The expansion points depend on the parent only: reuse them rather than recompute.
                info = jax.tree.map(lambda v: v[ancestors], info)
                prior = model.transition(params, x_prev[ancestors], y_prev)
        else:
            x_parents = jnp.where(resample, smooth_resample_from_uniform(uniform, x_prev, log_first), x_prev)
            prior = model.transition(params, x_parents, y_prev)
            info = tangent(prior, y_t) if proposal == "auxiliary" else None
        log_post = jnp.where(resample, -log_num, log_first)
        x, log_w = move(prior, y_t, noise, info)
        increment, log_weights, ess, (mean, var) = _weigh(log_post, log_w, x, state_shape)
        return (x, log_weights, ess), outputs(increment + log_c, mean, var, ess, resample, (x, ancestors))

    def finish(carry, out):
        if not trace_path:
            return out
        particles, ancestors = out.pop("history")
        return {**out, "latent_path": _trace_path(jax.random.fold_in(key, 1), carry[1], particles, ancestors)}

    # The moves' normals (or keys) come a block of steps at a time: an outer scan over whole blocks around the
    # inner scan over steps, then the remaining steps as one shorter block.
    block = _block_length(num * math.prod(state_shape), num_steps - 1)
    blocks = _driver.Blocks(block, block_noise, block_root, tail_key)
    return _driver.run_filter(ParticleFilterResult, init, step, (y, _driver.lagged(y), uniforms), blocks=blocks,
                              finish=finish)


def _tangent(model, params, prior, log_g, y_t, num_newton_steps, state_shape, gaps):
    """Expansion point a, log g(a) and its gradient, per particle (see the Notes of
[`particle_filter`][bayesvol.filters.particle_filter])."""
    state_ndim = len(state_shape)
    mean = _common.gaussian_mean(prior)
    num = mean.shape[0]
    if num_newton_steps == 0:
        grad = jax.grad(lambda z: jnp.sum(log_g(z)))(mean)
        return mean, log_g(mean), grad
    if state_ndim == 0:
        variance = _common.gaussian_covariance(prior, 0)[..., 0, 0]
        found = _newton.maximise_elementwise(log_g, mean, variance, num_newton_steps)
        return found.x, found.log_g, found.grad_log_g
    flat_size = math.prod(state_shape)
    precision = jnp.linalg.inv(_common.gaussian_covariance(prior, state_ndim))
    precision = jnp.broadcast_to(precision, (num, flat_size, flat_size))

    def one(mean_i, precision_i):
        def log_g_i(z):
            law = model.emission(params, z.reshape(state_shape))
            return jnp.sum(_base.masked_log_prob(law, y_t) if gaps else law.log_prob(y_t))

        return _newton.maximise(log_g_i, mean_i.reshape(flat_size), precision_i, num_newton_steps)

    found = jax.vmap(one)(mean, precision)
    reshape = (num,) + state_shape
    return found.x.reshape(reshape), found.log_g, found.grad_log_g.reshape(reshape)


def _weigh(log_post, log_w, x, state_shape):
    """Predictive log-likelihood term, normalised log-weights, ESS and weighted moments of the particles ``x``
    from post-resampling log-weights ``log_post`` and second-stage log-weights ``log_w``.

    One exp and sums over the particles (sibling reductions that XLA fuses into one pass): with
    m = max_i(log Wbar_i + log w_i) and e_i = exp(. - m), log sum_i Wbar_i w_i = m + log sum e, the normalised
    weights are e / sum e and the ESS is (sum e)^2 / sum e^2.
    """
    num = x.shape[0]
    log_unnormalised = log_post + log_w
    log_unnormalised = jnp.where(jnp.isnan(log_unnormalised), -jnp.inf, log_unnormalised)
    top = jnp.max(log_unnormalised)
    finite = jnp.isfinite(top)
    # All weights zero: the estimate of p(y_t | ...) is zero; carry uniform weights (e = 1) so later steps stay
    # finite.
    shifted = jnp.where(finite, log_unnormalised - top, 0.0)
    scaled = jnp.exp(shifted)
    total = jnp.sum(scaled)
    log_total = jnp.log(total)
    increment = jnp.where(finite, top + log_total, -jnp.inf)
    ess = total**2 / jnp.sum(scaled**2)
    # Moments about the first particle (a point of the cloud), so that the variance as a difference of weighted
    # sums loses no precision to a large mean.
    flat = x.reshape(num, -1)
    deviation = flat - flat[0]
    mean_deviation = jnp.sum(scaled[:, None] * deviation, axis=0) / total
    variance = jnp.sum(scaled[:, None] * deviation**2, axis=0) / total - mean_deviation**2
    mean = (flat[0] + mean_deviation).reshape(state_shape)
    variance = jnp.maximum(variance, 0.0).reshape(state_shape)
    return increment, shifted - log_total, ess, (mean, variance)


def _trace_path(key, log_weights, particles, ancestors):
    """One path drawn from the final weights, then back through the ancestors: particle b_t of step t descends
    from particle ancestors_t[b_t] of step t - 1 (``particles`` and ``ancestors`` of all T steps; the first
    step's ancestors are unused)."""
    last = jax.random.categorical(key, log_weights).astype(jnp.int32)

    def trace_back(index, step_history):
        x_t, ancestors_t = step_history
        return ancestors_t[index], x_t[index]

    first, later = lax.scan(trace_back, last, (particles[1:], ancestors[1:]), reverse=True)
    return jnp.concatenate([particles[0][first][None], later])
