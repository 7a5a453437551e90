r"""Particle marginal Metropolis-Hastings (PMMH): posterior draws of a latent-state model's parameters with the
particle filter's likelihood estimate in place of the intractable likelihood (Andrieu, Doucet & Holenstein 2010).

The chain moves by a Gaussian random walk on the unconstrained scale (the bijections of the priors' supports, as
NUTS and [`bayesvol.fit`][bayesvol.fit] use), with a proposal covariance adapted during warm-up only (Haario, Saksman &
Tamminen 2001), re-estimated over doubling windows. Each chain is one ``lax.scan`` over iterations; chains
are ``vmap``-ped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

import bayesvol.inference._idata as _idata
from bayesvol.filters import particle_filter
from bayesvol.filters._common import check_observations
from bayesvol.inference.diagnostics import check_convergence
from bayesvol.models._protocol import ModelDefaults, StateSpaceLaws

__all__ = ["PMMHTrace", "adaptation_windows", "iteration_keys", "run_pmmh", "sample_pmmh"]

# Haario et al.'s scaling of the empirical covariance, 2.38^2 / d (optimal for a Gaussian target in d dimensions).
ADAPTIVE_SCALE = 2.38**2
# Added to the empirical covariance (times the identity) so the proposal stays non-singular.
ADAPTIVE_JITTER = 1e-8


class PMMHTrace(NamedTuple):
    """Output of [`run_pmmh`][bayesvol.inference.pmmh.run_pmmh] for one chain (``M`` iterations after warm-up, ``d``
parameters).

    Attributes
    ----------
    positions : jax.Array
        Unconstrained parameters, shape ``(M, d)``.
    log_likelihoods : jax.Array
        Log-likelihood estimate attached to the current state (kept, not recomputed, while the chain stays),
        shape ``(M,)``.
    pointwise : jax.Array
        The pointwise terms of that estimate (``log p(y_t | y_{1:t-1})``), shape ``(M, T)``.
    accept_probabilities : jax.Array
        $\\min(1, \\text{ratio})$ of each proposal, shape ``(M,)``.
    accepted : jax.Array
        Whether each proposal was accepted, shape ``(M,)``.
    proposal_covariance : jax.Array
        The random walk's covariance after warm-up (used for all kept draws), shape ``(d, d)``.
    warmup_acceptance : jax.Array
        Fraction of proposals accepted during warm-up.
    latent_paths : jax.Array or None
        The latent path drawn with the likelihood estimate of the current state, shape ``(M, T, ...)``, when
        ``log_likelihood`` returns one; else ``None``.
    """

    positions: jax.Array
    log_likelihoods: jax.Array
    pointwise: jax.Array
    accept_probabilities: jax.Array
    accepted: jax.Array
    proposal_covariance: jax.Array
    warmup_acceptance: jax.Array
    latent_paths: jax.Array | None = None


class _State(NamedTuple):
    position: jax.Array
    log_likelihood: jax.Array
    pointwise: jax.Array
    latent: jax.Array | None
    log_prior: jax.Array
    covariance: jax.Array
    window_mean: jax.Array
    window_sq: jax.Array  # sum of squared deviations from the window's running mean (Welford)
    window_count: jax.Array
    window_accepted: jax.Array
    num_accepted_warmup: jax.Array


def iteration_keys(key, index):
    """Keys of iteration ``index``: (proposal normals, acceptance uniform, likelihood estimate)."""
    return jax.random.split(jax.random.fold_in(key, index), 3)


def adaptation_windows(num_warmup: int) -> tuple[int, ...]:
    """Ends of the warm-up windows over which the proposal covariance is re-estimated: doubling windows ending
    at W/8, W/4, W/2 and W (the last one is the second half of the warm-up)."""
    return tuple(sorted({num_warmup // 8, num_warmup // 4, num_warmup // 2, num_warmup} - {0}))


def run_pmmh(log_likelihood: Callable, log_prior: Callable, init_position, key, *, num_warmup: int,
             num_samples: int, init_covariance) -> PMMHTrace:
    r"""One Metropolis-Hastings chain with a noisy (or exact) log-likelihood; pure JAX, ``vmap``-able.

    Parameters
    ----------
    log_likelihood : callable
        ``(position, key) -> (total, pointwise)`` or ``(total, pointwise, latent_path)``: an estimate of the
        log-likelihood at the unconstrained ``position`` (shape ``(d,)``), its ``(T,)`` pointwise terms and,
        optionally, a latent path drawn by the same particle filter (kept with the state, like the estimate).
        For PMMH, the particle filter's (whose exponential is unbiased); an exact log-likelihood gives plain
        random-walk Metropolis-Hastings.
    log_prior : callable
        ``position -> log density`` of the prior on the unconstrained scale (Jacobian included).
    init_position : array_like, shape (d,)
    key : jax.Array
        PRNG key of the chain. Iteration ``i`` uses `iteration_keys` ``(key, i)`` after one split of
        ``key`` (the first half estimates the likelihood at the start).
    num_warmup, num_samples : int
        Warm-up iterations (adaptation; discarded) and kept iterations.
    init_covariance : array_like, shape (d, d)
        Proposal covariance before adaptation (and throughout when ``num_warmup == 0``).

    Returns
    -------
    PMMHTrace

    Notes
    -----
    The random walk proposes $u' = u + L z$ with $L L^\top = \Sigma$ and accepts with probability
    $\min\{1, \hat p(y \mid u') p(u') / (\hat p(y \mid u) p(u))\}$, keeping the estimate
    $\hat p(y \mid u)$ of the current state until the next acceptance (so the chain targets the exact
    posterior when $\hat p$ is unbiased). During warm-up, at the end of each of the windows of
    `adaptation_windows`, $\Sigma$ becomes $2.38^2/d$ times the empirical covariance of
    that window's states (Haario et al. 2001; Roberts & Rosenthal 2009), or a quarter of the previous
    $\Sigma$ when the window accepted fewer than two proposals. Later windows are longer and start
    later, so the initial transient does not inflate the final covariance; after warm-up $\Sigma$ is
    fixed, so the kept draws come from a time-homogeneous Markov chain.
    """
    init_position = jnp.asarray(init_position, dtype=jnp.float64)
    dim = init_position.shape[0]
    init_covariance = jnp.asarray(init_covariance, dtype=jnp.float64)
    window_ends = jnp.asarray(adaptation_windows(num_warmup) or (-1,))
    key_start, key_chain = jax.random.split(key)
    loglik0, pointwise0, latent0 = _finite_loglik(log_likelihood, init_position, key_start)
    state = _State(init_position, loglik0, pointwise0, latent0, log_prior(init_position), init_covariance,
                   jnp.zeros(dim), jnp.zeros((dim, dim)), jnp.zeros(()), jnp.zeros((), dtype=jnp.int32),
                   jnp.zeros((), dtype=jnp.int32))

    def step(state: _State, index):
        key_prop, key_accept, key_lik = iteration_keys(key_chain, index)
        chol = jnp.linalg.cholesky(state.covariance)
        proposal = state.position + chol @ jax.random.normal(key_prop, (dim,))
        prior_new = log_prior(proposal)
        loglik_new, pointwise_new, latent_new = _finite_loglik(log_likelihood, proposal, key_lik)
        log_ratio = loglik_new + prior_new - state.log_likelihood - state.log_prior
        log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
        accept = jnp.log(jax.random.uniform(key_accept)) < log_ratio
        position = jnp.where(accept, proposal, state.position)
        in_warmup = index < num_warmup
        # Welford's running mean and sum of squared deviations over the current warm-up window.
        count = state.window_count + 1.0
        delta = position - state.window_mean
        window_mean = state.window_mean + delta / count
        window_sq = state.window_sq + jnp.outer(delta, position - window_mean)
        window_accepted = state.window_accepted + accept.astype(jnp.int32)
        window_end = in_warmup & jnp.any(index + 1 == window_ends)
        adapted = ADAPTIVE_SCALE / dim * (window_sq / jnp.maximum(count - 1.0, 1.0) + ADAPTIVE_JITTER * jnp.eye(dim))
        adapted = jnp.where(window_accepted >= 2, adapted, 0.25 * state.covariance)
        reset = window_end | ~in_warmup
        new_state = _State(
            position=position,
            log_likelihood=jnp.where(accept, loglik_new, state.log_likelihood),
            pointwise=jnp.where(accept, pointwise_new, state.pointwise),
            latent=jax.tree.map(lambda new, old: jnp.where(accept, new, old), latent_new, state.latent),
            log_prior=jnp.where(accept, prior_new, state.log_prior),
            covariance=jnp.where(window_end, adapted, state.covariance),
            window_mean=jnp.where(reset, 0.0, window_mean),
            window_sq=jnp.where(reset, 0.0, window_sq),
            window_count=jnp.where(reset, 0.0, count),
            window_accepted=jnp.where(reset, 0, window_accepted),
            num_accepted_warmup=state.num_accepted_warmup + (accept & in_warmup).astype(jnp.int32),
        )
        record = (position, new_state.log_likelihood, new_state.pointwise, jnp.minimum(1.0, jnp.exp(log_ratio)),
                  accept, new_state.latent)
        return new_state, record

    # One scan over warm-up and kept iterations (the likelihood is compiled once); warm-up records are dropped.
    state, records = lax.scan(step, state, jnp.arange(num_warmup + num_samples))
    positions, logliks, pointwise, probabilities, accepted, latent = jax.tree.map(lambda r: r[num_warmup:], records)
    return PMMHTrace(positions, logliks, pointwise, probabilities, accepted, state.covariance,
                     state.num_accepted_warmup / max(num_warmup, 1), latent)


def _finite_loglik(log_likelihood, position, key):
    total, pointwise, *latent = log_likelihood(position, key)
    total = jnp.where(jnp.isnan(total), -jnp.inf, total)
    return total, pointwise, (latent[0] if latent else None)


def check_latent_state_model(model):
    if not isinstance(model, StateSpaceLaws):
        raise ValueError(f"method='pmmh' needs a latent-state model (initial, transition, emission and priors; see "
                         f"bayesvol.models._protocol); {type(model).__name__} is not one. Observation-driven models "
                         "have an exact likelihood: use method='nuts'")
    if not isinstance(model, ModelDefaults):
        raise TypeError(f"method='pmmh' needs the hooks of bayesvol.models._protocol.ModelDefaults (parameter "
                        f"transforms, start values); derive {type(model).__name__} from LatentStateModelBase")
    if not model.elementwise_transforms:
        raise NotImplementedError(f"method='pmmh' is not available for {type(model).__name__}, whose parameters "
                                  "need a joint transform; use method='nuts'")


def _check_count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def sample_pmmh(model, y, index=None, *, num_particles: int = 1000, num_samples: int = 1000,
                num_warmup: int = 1000, num_chains: int = 4, seed: int = 0, init_params: dict | None = None,
                init_scale: float = 0.1, ess_threshold: float = 0.5, warn: bool = True, latent_path: bool = False):
    r"""Posterior draws by particle marginal Metropolis-Hastings; what ``bayesvol.sample(method="pmmh")`` runs.

    Parameters
    ----------
    model : latent-state model
        E.g. [`bayesvol.models.SV`][bayesvol.models.SV]; its priors define the posterior and, through their supports,
        the unconstrained scale of the random walk.
    y : array_like, shape (T,)
    index : optional
        Time coordinates of ``y`` (dates).
    num_particles : int
        Particles of the bootstrap filter (systematic resampling when the ESS falls below
        ``ess_threshold * N``). Choose it so that the log-likelihood's Monte Carlo SD near the posterior mode
        is about 1 to 1.5 (Doucet, Pitt, Deligiannidis & Kohn 2015).
    num_samples : int
        Kept iterations per chain.
    num_warmup : int
        Warm-up iterations per chain (proposal adaptation, discarded).
    num_chains : int
        Number of chains.
    seed : int
    init_params : dict, optional
        Starting values (natural scale); default the model's first ``start_values(y)`` where it has them,
        else the point that the prior supports' bijections map zero to. Chains start at independent
        perturbations of it (normal, SD ``init_scale`` on the unconstrained scale).
    init_scale : float
        Standard deviation of each coordinate of the random walk before adaptation (unconstrained scale).
    ess_threshold : float
        Resampling threshold of the particle filter.
    warn : bool
        Emit [`ConvergenceWarning`][bayesvol.ConvergenceWarning] messages (R-hat, ESS).
    latent_path : bool
        Also keep, with each state of the chain, one latent path drawn by the particle filter that estimated
        its likelihood (from the final weights, traced back through the ancestors), as the posterior
        variable ``latent`` (dims chain, draw, time). The pairs (parameters, path) are then draws from the
        exact joint posterior of $(\theta, x_{1:T})$ (Andrieu, Doucet & Holenstein 2010). Memory
        $O(NT)$ per likelihood evaluation.

    Returns
    -------
    xarray.DataTree
        ``posterior`` (the parameters, dims chain and draw), ``sample_stats`` (``acceptance_rate``: the
        acceptance probability of each proposal; ``accepted``; ``lp``: log-likelihood estimate plus log prior
        density of the current state), ``log_likelihood`` (the particle filter's one-step predictive
        $\log \hat p(y_t \mid y_{1:t-1}, \theta)$ at each draw, so ``arviz_stats.compare`` can rank the model
        against others on predictive terms) and ``observed_data``; ``attrs`` record the method, particle count,
        warm-up and mean acceptance.

    Examples
    --------
    >>> import bayesvol
    >>> from bayesvol.inference.pmmh import sample_pmmh
    >>> model = bayesvol.models.SV()
    >>> y = bayesvol.simulate(model, {"mu": -1.0, "phi": 0.95, "sigma": 0.2}, 100, seed=0).y
    >>> idata = sample_pmmh(model, y, num_particles=50, num_warmup=40, num_samples=40, num_chains=1, warn=False)
    >>> idata.posterior["phi"].dims, idata.posterior.attrs["inference"]
    (('chain', 'draw'), 'pmmh')
    """
    check_latent_state_model(model)
    num_particles = _check_count(num_particles, "num_particles", 1)
    num_samples = _check_count(num_samples, "num_samples", 1)
    num_warmup = _check_count(num_warmup, "num_warmup", 0)
    num_chains = _check_count(num_chains, "num_chains", 1)
    if not (isinstance(init_scale, int | float) and math.isfinite(init_scale) and init_scale > 0):
        raise ValueError(f"init_scale must be a positive number, got {init_scale!r}")
    y = check_observations(y)
    names = tuple(model.param_names)
    transforms = model.param_transforms()
    priors = model.prior_distributions()
    if init_params is None:
        starts = model.start_values(np.asarray(y))
        init_params = starts[0] if starts else {n: transforms[n](jnp.zeros(())) for n in names}
    missing = set(names) - set(init_params)
    if missing:
        raise ValueError(f"init_params lacks {', '.join(sorted(missing))}")
    shapes = tuple(jnp.shape(jnp.asarray(init_params[n])) for n in names)
    template = tuple(jnp.zeros(s) for s in shapes)
    unravel = ravel_pytree(template)[1]
    unconstrained = []
    for n in names:
        value = jnp.asarray(init_params[n], dtype=jnp.float64)
        if not bool(jnp.all(getattr(priors, n).support.check(value))):
            raise ValueError(f"init_params[{n!r}] = {init_params[n]!r} is outside the support of its prior")
        unconstrained.append(transforms[n].inv(value))
    init_flat = ravel_pytree(tuple(unconstrained))[0]
    dim = init_flat.shape[0]

    def constrain(u_flat):
        u = unravel(u_flat)
        return {n: transforms[n](u_n) for n, u_n in zip(names, u, strict=True)}

    def log_prior(u_flat):
        u = unravel(u_flat)
        total = 0.0
        for n, u_n in zip(names, u, strict=True):
            value = transforms[n](u_n)
            total = total + jnp.sum(getattr(priors, n).log_prob(value))
            total = total + jnp.sum(transforms[n].log_abs_det_jacobian(u_n, value))
        return jnp.where(jnp.isnan(total), -jnp.inf, total)

    if not isinstance(latent_path, bool):
        raise ValueError(f"latent_path must be True or False, got {latent_path!r}")

    def log_likelihood(u_flat, key):
        out = particle_filter(model, model.params_type(**constrain(u_flat)), y, key, num_particles,
                              ess_threshold=ess_threshold, latent_path=latent_path)
        if latent_path:
            return out.log_likelihood, out.pointwise_log_likelihood, out.latent_path
        return out.log_likelihood, out.pointwise_log_likelihood

    key_init, key_chains = jax.random.split(jax.random.PRNGKey(seed))
    starts = init_flat + init_scale * jax.random.normal(key_init, (num_chains, dim))
    chain = jax.jit(jax.vmap(lambda u0, k: run_pmmh(
        log_likelihood, log_prior, u0, k, num_warmup=num_warmup, num_samples=num_samples,
        init_covariance=init_scale**2 * jnp.eye(dim))))
    trace = chain(starts, jax.random.split(key_chains, num_chains))
    natural = jax.vmap(jax.vmap(constrain))(trace.positions)
    posterior = {n: np.asarray(natural[n]) for n in names}
    if latent_path:
        posterior["latent"] = np.asarray(trace.latent_paths)
    log_priors = jax.vmap(jax.vmap(log_prior))(trace.positions)
    acceptance = float(jnp.mean(trace.accepted))
    sample_stats = {
        "acceptance_rate": np.asarray(trace.accept_probabilities),
        "accepted": np.asarray(trace.accepted),
        "lp": np.asarray(trace.log_likelihoods + log_priors),
        "log_likelihood_estimate": np.asarray(trace.log_likelihoods),
    }
    idata = _idata.build(
        model, np.asarray(y), index, posterior, sample_stats=sample_stats, log_likelihood=np.asarray(trace.pointwise),
        attrs={"inference": "pmmh", "num_particles": num_particles, "num_warmup": num_warmup,
               "acceptance": acceptance,
               "warmup_acceptance": float(jnp.mean(trace.warmup_acceptance)),
               "proposal": "Gaussian random walk on the unconstrained scale, covariance 2.38^2/d times the "
                           "warm-up draws' covariance (fixed after warm-up)",
               "log_likelihood": "one-step predictive: the bootstrap particle filter's log p(y_t | y_{1:t-1}, "
                                 f"theta) estimate with {num_particles} particles at each draw"})
    check_convergence(idata, list(names), warn=warn)
    return idata
