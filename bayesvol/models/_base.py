"""Pieces shared by every model: parameter conversion, priors as NumPyro sites, simulation.

A *latent-state model* provides ``param_names``, ``params_type``, ``prior_distributions()``,
``initial(params)``, ``transition(params, state_prev, y_prev)`` and ``emission(params, state)``, each of
the last three returning a NumPyro distribution. ``y_prev`` lets the state equation depend on the
previous observation (leverage); models without that ignore it. Everything else — the simulator, the
NumPyro program and the filters — is written once against these methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from jax import lax

import bayesvol._validation as _validation


def as_key(key_or_seed, name: str = "key"):
    """A JAX PRNG key from an integer seed, ``None`` (a fresh random seed) or a key: every ``simulate`` takes these."""
    return _validation.as_key(key_or_seed, name)


# Shortest simulated path: a series of one value has no dynamics to show.
MIN_SIMULATED_STEPS = 2


def simulation_inputs(num_timesteps, key) -> tuple[int, jax.Array]:
    """``num_timesteps`` as an int >= 2 and a key from ``key``, with clear errors: shared by every ``simulate``."""
    return _validation.as_count(num_timesteps, "num_timesteps", MIN_SIMULATED_STEPS), as_key(key)


def prior_ndims(model) -> dict[str, int]:
    """Name -> number of dimensions of each parameter, read from the shape of its prior."""
    priors = model.prior_distributions()
    return {name: len(getattr(priors, name).batch_shape) + len(getattr(priors, name).event_shape)
            for name in model.param_names}


def merge_priors(defaults: Mapping, overrides: Mapping | None, allowed) -> dict:
    """Defaults updated by user priors; unknown names and non-distributions are errors."""
    merged = dict(defaults)
    for name, prior in dict(overrides or {}).items():
        if name not in allowed:
            raise ValueError(f"unknown parameter {name!r} in priors; this model has {', '.join(allowed)}")
        if not isinstance(prior, numpyro.distributions.Distribution):
            raise TypeError(f"prior for {name!r} must be a numpyro distribution, got {type(prior).__name__}")
        if prior.batch_shape != () or prior.event_shape != ():
            raise ValueError(f"prior for {name!r} must be a scalar distribution; got batch shape "
                             f"{prior.batch_shape} and event shape {prior.event_shape}")
        merged[name] = prior
    return merged


def as_params(model, params, *, batched: bool = False):
    """Convert ``params`` (a ``<Model>Params`` or a mapping name -> value) and check each support.

    ``batched=True`` accepts leading axes of draws on every parameter (functions of the parameters that are
    elementwise, such as a GARCH persistence evaluated on posterior draws); the shape check is then skipped.

    Raises
    ------
    ValueError
        If a parameter is missing, unknown, not a real number, has the wrong number of dimensions (a vector
        where a scalar belongs) or lies outside the support of its prior.
    """
    names = model.param_names
    if isinstance(params, model.params_type):
        values = {name: getattr(params, name) for name in names}
    elif isinstance(params, Mapping):
        unknown = set(params) - set(names)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}; {model!r} has {', '.join(names)}")
        missing = [name for name in names if name not in params]
        if missing:
            raise ValueError(f"missing parameter(s) {missing} for {model!r}")
        values = {name: params[name] for name in names}
    else:
        raise TypeError(f"params must be a {model.params_type.__name__} or a dict, got {type(params).__name__}")
    priors = model.prior_distributions()
    # Models that derive from the protocol's base classes declare the dimensions of per-asset parameters; a
    # bare state-space model (the filters accept any object with the three laws) has them from its priors.
    hook = getattr(model, "param_ndims", None)
    ndims = hook() if hook is not None else prior_ndims(model)
    for name in names:
        value = values[name]
        if not isinstance(value, jax.core.Tracer):
            value = _validation.real_values(value, f"parameter {name!r}")
        if not batched:
            _validation.check_parameter_shape(name, value, ndims[name], repr(model))
        value = jnp.asarray(value, dtype=jnp.float64)
        concrete = not isinstance(value, jax.core.Tracer)
        if concrete and not bool(jnp.all(getattr(priors, name).support(value))):
            raise ValueError(
                f"parameter {name}={np.asarray(value)} is outside its support "
                f"{getattr(priors, name).support} for {model!r}"
            )
        values[name] = value
    params = model.params_type(**values)
    # Edges that the priors' (closed) supports admit but the model does not, e.g. |phi| = 1 in SV; a bare
    # state-space model without the protocol's defaults has none.
    edge_check = getattr(model, "check_parameter_values", None)
    if edge_check is not None and not any(isinstance(v, jax.core.Tracer) for v in values.values()):
        edge_check(params)
    return params


# Points and factors that probe whether a support is unchanged by a change of units (see scale_free_supports).
_SUPPORT_PROBES = (-1e3, -2.5, -1.0, -1e-3, 1e-3, 0.5, 1.0, 2.5, 1e3)
_SUPPORT_FACTORS = (1e-4, 1e4)


def scale_free_supports(model, multiplied=(), shifted=()) -> bool:
    """True when a change of the data's units keeps every named parameter's support.

    ``multiplied`` parameters are multiplied by a positive factor when the data are rescaled (a location or
    a variance), ``shifted`` ones shifted by a constant (a log variance). Their prior supports are probed at
    a few points (scaled identity matrices for a matrix support): a support bounded in the user's units (a
    custom prior on (0, 1) for a variance) changes, and the family then fits in the user's units.
    """
    priors = model.prior_distributions()
    # The probes are constants: evaluated at once even while a caller is being traced (the batch fit's jit).
    with jax.ensure_compile_time_eval():
        return _probe_supports(model, priors, multiplied, shifted)


def _probe_supports(model, priors, multiplied, shifted) -> bool:
    def member(support, value):
        value = jnp.asarray(value, dtype=jnp.float64)
        if support.event_dim == 2:
            k = getattr(model, "num_assets", None) or 1
            value = value * jnp.eye(k)
        return bool(jnp.all(support(value)))

    for names, move in ((multiplied, lambda x, c: x * c), (shifted, lambda x, c: x + np.log(c))):
        for name in names:
            support = getattr(priors, name).support
            if support.event_dim not in (0, 2):
                return False
            for x in _SUPPORT_PROBES:
                if any(member(support, x) != member(support, move(x, c)) for c in _SUPPORT_FACTORS):
                    return False
    return True


def sample_params(model):
    """Declare one NumPyro sample site per parameter, with the model's prior."""
    priors = model.prior_distributions()
    return model.params_type(**{name: numpyro.sample(name, getattr(priors, name)) for name in model.param_names})


def is_complete(y) -> bool:
    """True when ``y`` holds known numbers without a missing value (NaN); False for a traced ``y``, whose
    values are unknown, so that code compiled for it handles gaps."""
    if isinstance(y, jax.core.Tracer):
        return False
    return not bool(np.isnan(np.asarray(y)).any())


def missing_entries(law, value):
    """Where ``value`` is missing (NaN) for ``law``: per observation, a vector observation counting as
    missing when any of its entries is."""
    missing = jnp.isnan(value)
    event_ndim = len(law.event_shape)
    return jnp.any(missing, axis=tuple(range(-event_ndim, 0))) if event_ndim else missing


def masked_log_prob(law, value):
    """``law.log_prob(value)``, zero where the observation is missing (NaN): a missing observation adds
    nothing to the likelihood and says nothing about the state.

    The density is evaluated at 0 in place of a missing value and the result discarded, so that neither the
    value nor its derivatives see a NaN; where nothing is missing the result is ``law.log_prob(value)``
    exactly.
    """
    value = jnp.asarray(value)
    terms = law.log_prob(jnp.where(jnp.isnan(value), 0.0, value))
    return jnp.where(missing_entries(law, value), 0.0, terms)


def noncentred_path(model, params, z, y):
    """Latent path from standard-normal innovations ``z`` (non-centred form), one ``lax.scan``.

    ``x_1 = m_1 + s_1 z_1`` and ``x_t = m_t + s_t z_t`` where ``(m, s)`` are the location and scale of
    ``model.initial`` and ``model.transition`` — the same distributions the simulator and the filters use.
    """
    first = model.initial(params)
    x1 = first.loc + first.scale * z[0]

    def step(x_prev, inputs):
        z_t, y_prev = inputs
        d = model.transition(params, x_prev, y_prev)
        x_t = d.loc + d.scale * z_t
        return x_t, x_t

    _, rest = lax.scan(step, x1, (z[1:], y[:-1]))
    return jnp.concatenate([x1[None], rest])


class Simulation(NamedTuple):
    """Simulated data: observations ``y``, their conditional variances given the state, and the state path ``h``."""

    y: np.ndarray
    variance: np.ndarray
    h: np.ndarray


def simulate_latent(model, params, num_timesteps: int, key) -> Simulation:
    """Draw ``(y, h)`` from a latent-state model by ancestral sampling in one ``lax.scan``.

    Compiled once per model (a frozen, hashable configuration) and path length, so that simulating over
    many seeds does not trace again.
    """
    y, variance, h = _simulate_latent_compiled(model, params, int(num_timesteps), key)
    return Simulation(y=np.asarray(y), variance=np.asarray(variance), h=np.asarray(h))


@partial(jax.jit, static_argnums=(0, 2))
def _simulate_latent_compiled(model, params, num_timesteps: int, key):
    key_init, key_obs, key_scan = jax.random.split(key, 3)
    h1 = model.initial(params).sample(key_init)
    y1 = model.emission(params, h1).sample(key_obs)

    def step(carry, step_key):
        h_prev, y_prev = carry
        key_h, key_y = jax.random.split(step_key)
        h_t = model.transition(params, h_prev, y_prev).sample(key_h)
        y_t = model.emission(params, h_t).sample(key_y)
        return (h_t, y_t), (h_t, y_t)

    _, (h_rest, y_rest) = lax.scan(step, (h1, y1), jax.random.split(key_scan, num_timesteps - 1))
    h = jnp.concatenate([h1[None], h_rest])
    y = jnp.concatenate([y1[None], y_rest])
    return y, model.emission(params, h).variance, h
