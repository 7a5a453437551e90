"""The observation-driven protocol: one recursion for filtering, likelihood, simulation and NumPyro.

An *observation-driven model* (GARCH family, IG-GARCH, DCC and its correlation step) provides

``init_state(params, y)``
    The state that governs the first observation (``y`` is the data, or ``None`` when simulating, in which
    case the model starts from its stationary mean).
``update(params, state, y_t)``
    The state for time ``t + 1`` from the state for time ``t`` and the observation ``y_t``.
``emission(params, state)``
    The law of ``y_t`` given the state for time ``t`` (a NumPyro distribution). It broadcasts: given the
    whole path of states it is the product of the one-step-ahead conditional laws.
``in_parameter_space(params)``
    A boolean (JAX) that is false where the parameters leave the model's parameter space in ways a
    per-parameter support cannot express (stationarity); the log-likelihood is then ``-inf``.

``affine_coefficients(params, y)`` (optional)
    ``(a_t, b_t)`` for a model whose ``update`` is the affine map ``a_t * state + b_t`` with coefficients
    that depend on the data but not on the state (GARCH, GJR); ``update`` is then defined from them, and
    filtering may run as a parallel prefix scan over the maps instead of a sequential loop (see
    `filter_states`).

The state path comes from one ``lax.scan`` over ``update`` (or the parallel prefix); the one-step-ahead log
densities are then the emission's ``log_prob`` evaluated on the whole path at once (vectorised over time,
which is where most of the arithmetic is). The simulator runs the same ``update`` with draws from the same ``emission``.

Missing observations (a model with ``supports_missing``): at a missing ``y_t`` (NaN) the state moves on by
``update_missing(params, state)``, ``update`` with each function of the unseen shock replaced by its
conditional expectation given the past (the rule is the model's own, documented there), and the log density
of a missing ``y_t`` is zero (`loglik_from_states`). Start values computed from the data (backcasts,
sample moments) use the observed values only (`observed_mean`). Data known to be complete run the
recursion without any of this, so their results are those of the plain recursion, bit for bit.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
from jax import lax
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes

import bayesvol.models._base as _base
from bayesvol.models._protocol import AffineRecursionModel

LOGLIK_KIND = "one-step-ahead predictive log p(y_t | y_{1:t-1}, theta)"


class LocationScale(ndist.Distribution):
    """Law of ``loc + sqrt(variance) * z`` for a standardised innovation law ``z`` (mean 0, variance 1).

    Parametrised by the variance, as the GARCH recursion delivers it: ``log_prob`` needs one ``log`` and one
    reciprocal square root per observation on top of the innovation's log density.
    """

    arg_constraints = {"loc": constraints.real, "variance": constraints.positive}
    support = constraints.real

    def __init__(self, innovation, loc, variance, *, validate_args=None):
        self.innovation = innovation
        self.loc, self.scale_squared = promote_shapes(loc, variance)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(loc), jnp.shape(variance), innovation.batch_shape)
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def log_prob(self, value):
        z = (value - self.loc) * lax.rsqrt(self.scale_squared)
        return self.innovation.log_prob(z) - 0.5 * jnp.log(self.scale_squared)

    def sample(self, key, sample_shape=()):
        z = self.innovation.sample(key, sample_shape + self.batch_shape)
        return self.loc + jnp.sqrt(self.scale_squared) * z

    @property
    def mean(self):
        return jnp.broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self):
        return jnp.broadcast_to(self.scale_squared, self.batch_shape)


def is_concrete(*values) -> bool:
    """True when no value is a JAX tracer (so checks may raise Python errors)."""
    return not any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(values))


def filter_states(model, params, y, state=None):
    """State path ``(state_1, ..., state_T)`` and the state for ``T + 1``.

    The path starts from ``state`` when given (e.g. a start value fixed outside the sample), else from
    ``model.init_state(params, y)``.

    On CPU, the sequential `sequential_filter_states` for every model. On an accelerator, a model whose
    ``update`` is affine in the state (it has ``affine_coefficients``) gets the parallel prefix scan of
    `affine_filter_states` instead, which replaces ``T`` dependent steps by about ``2 log2 T`` passes
    over the whole series. On CPU the prefix scan does about twice the arithmetic of the loop and was not
    faster (``benchmarks/garch_recursion.py``: about 1.1 times the CPU time for one value and gradient, 2.5
    times for the forward-over-reverse Hessian), because each step of the loop is already a few vector operations.

    Data with gaps (or data not known while tracing) run the sequential recursion with
    ``model.update_missing`` at the missing steps (see `sequential_filter_states`).
    """
    if not _base.is_complete(y):
        return sequential_filter_states(model, params, y, state=state, gaps=True)
    if isinstance(model, AffineRecursionModel) and jax.default_backend() != "cpu":
        return affine_filter_states(model, params, y, state)
    return sequential_filter_states(model, params, y, state=state)


# Steps of the sequential recursion per loop iteration, read when a function is traced (see scan_unroll).
_SCAN_UNROLL = 1


@contextmanager
def scan_unroll(steps: int):
    """Trace the sequential recursion inside the block with ``lax.scan(..., unroll=steps)``.

    A compiled program keeps the setting it was traced with, so this is meant for jitted functions that
    are only ever traced under it (the batch optimiser, where vmapped steps of 64 series gain from fewer
    loop iterations while a single series of T = 5000 does not).
    """
    global _SCAN_UNROLL
    previous, _SCAN_UNROLL = _SCAN_UNROLL, int(steps)
    try:
        yield
    finally:
        _SCAN_UNROLL = previous


def sequential_filter_states(model, params, y, unroll: int | None = None, state=None, gaps: bool = False):
    """State path from one ``lax.scan`` over ``update`` (``unroll`` steps per loop iteration).

    With ``gaps``, a missing ``y_t`` (NaN; any entry of a vector observation) steps with
    ``model.update_missing(params, state_t)`` instead; ``update`` then sees 0 in its place, and its result is
    discarded, so that neither values nor derivatives meet a NaN.
    """

    def step(state_t, y_t):
        return model.update(params, state_t, y_t), state_t

    def step_with_gaps(state_t, inputs):
        y_t, missing_t = inputs
        seen = model.update(params, state_t, y_t)
        unseen = model.update_missing(params, state_t)
        return jax.tree.map(lambda a, b: jnp.where(missing_t, b, a), seen, unseen), state_t

    unroll = _SCAN_UNROLL if unroll is None else unroll
    first = model.init_state(params, y) if state is None else state
    if not gaps:
        last, states = lax.scan(step, first, y, unroll=unroll)
        return states, last
    missing = jnp.isnan(y)
    rows = jnp.any(missing.reshape(missing.shape[0], -1), axis=1)
    last, states = lax.scan(step_with_gaps, first, (jnp.where(missing, 0.0, y), rows), unroll=unroll)
    return states, last


def _compose_affine(earlier, later):
    """The map ``s -> a2 (a1 s + b1) + b2``: ``earlier = (a1, b1)`` applied first, then ``later = (a2, b2)``."""
    a1, b1 = earlier
    a2, b2 = later
    return a1 * a2, a2 * b1 + b2


def affine_filter_states(model, params, y, state=None):
    r"""State path of an affine recursion $s_{t+1} = a_t s_t + b_t$ by a parallel prefix scan.

    ``model.affine_coefficients(params, y)`` gives $(a_t, b_t)$ for every ``t`` at once (they depend on
    the data and the parameters, not on the state). The start value enters as the constant map
    $(0, s_1)$; the prefix compositions of the maps (``lax.associative_scan``: about
    $2\log_2 T$ vectorised passes instead of $T$ sequential steps, and a reverse-mode gradient of
    the same shape) are then constant maps whose offsets are $s_1, \dots, s_{T+1}$. With
    $0 \le a_t < 1$ every partial product lies in $[0, 1]$, so the result equals the sequential
    recursion up to rounding.
    """
    first = jnp.asarray(model.init_state(params, y) if state is None else state)
    slopes, offsets = model.affine_coefficients(params, y)
    slopes = jnp.concatenate([jnp.zeros((1,), dtype=offsets.dtype), jnp.broadcast_to(slopes, offsets.shape)])
    offsets = jnp.concatenate([first[None].astype(offsets.dtype), offsets])
    _, path = lax.associative_scan(_compose_affine, (slopes, offsets))
    return path[:-1], path[-1]


def loglik_from_states(model, params, states, y):
    """Pointwise ``log p(y_t | y_{1:t-1}, theta)`` given the filtered state path (``-inf`` off the space);
    zero at a missing ``y_t`` (NaN)."""
    law = model.emission(params, states)
    terms = law.log_prob(y) if _base.is_complete(y) else _base.masked_log_prob(law, y)
    return jnp.where(model.in_parameter_space(params), terms, -jnp.inf)


def backcast(residuals, decay: float, window: int):
    r"""Exponentially weighted mean $\sum_{j<\tau} w_j e_j^2 / \sum_{j<\tau} w_j$, $w_j = d^j$,
    $\tau = \min(\text{window}, T)$: the pre-sample variance of the GARCH family (``arch``'s backcast).

    Missing residuals (NaN) in the window get weight zero; when the whole window is missing, the mean of the
    observed squared residuals. With nothing missing the arithmetic is the plain weighted mean's, exactly.
    """
    residuals = jnp.asarray(residuals)
    window = min(window, residuals.shape[0])
    head = residuals[:window]
    observed = ~jnp.isnan(head)
    weights = jnp.where(observed, decay ** jnp.arange(window, dtype=residuals.dtype), 0.0)
    total = jnp.sum(weights)
    value = jnp.sum(weights * jnp.where(observed, head, 0.0) ** 2) / jnp.where(total > 0.0, total, 1.0)
    return jnp.where(total > 0.0, value, observed_mean(residuals, power=2))


def observed_mean(values, power: int = 1):
    """Mean of ``values ** power`` over the observed (not NaN) entries; the plain mean when none is missing.

    The power is taken after the missing entries are replaced by zero: a power of a NaN inside the graph
    would make every derivative NaN (through ``where``'s zero cotangent times the NaN's derivative), the
    derivative with respect to ``mu`` of a start variance from ``(y - mu) ** 2`` among them.
    """
    observed = ~jnp.isnan(values)
    filled = jnp.where(observed, values, 0.0)
    return jnp.sum(jnp.where(observed, filled**power, 0.0)) / jnp.sum(observed)


def observed_values(y) -> np.ndarray:
    """The observed (not NaN) entries of a known series, for start values computed from the data."""
    y = np.asarray(y, dtype=np.float64)
    return y[~np.isnan(y)]


def pointwise_loglik(model, params, y):
    """Pointwise exact log-likelihood: one scan over ``update``, then the emission on the whole path."""
    states, _ = filter_states(model, params, y)
    return loglik_from_states(model, params, states, y)


def simulate_path(model, params, num_timesteps: int, key, state=None):
    """Draw ``(y, states)`` by running ``update`` on draws from ``emission``, one ``lax.scan``.

    The path starts from ``state`` (e.g. the filtered state after the data, for forecasting) or, by default,
    from ``model.init_state(params, None)``; ``states[k]`` governs ``y[k]``. Compiled once per model (a
    frozen, hashable configuration) and path length: simulating over many seeds does not trace again.
    """
    return _simulate_path_compiled(model, params, int(num_timesteps), key, state)


@partial(jax.jit, static_argnums=(0, 2))
def _simulate_path_compiled(model, params, num_timesteps: int, key, state):
    def step(state_t, step_key):
        y_t = model.emission(params, state_t).sample(step_key)
        return model.update(params, state_t, y_t), (y_t, state_t)

    first = model.init_state(params, None) if state is None else state
    _, (y, states) = lax.scan(step, first, jax.random.split(key, num_timesteps))
    return y, states


def _flatten_draws(model, draws: dict):
    names = model.param_names
    lead = np.shape(draws[names[0]])
    flat = {k: jnp.reshape(jnp.asarray(draws[k]), (-1,) + np.shape(draws[k])[len(lead):]) for k in names}
    return lead, flat


def loglik_draws(model, draws: dict, y):
    """Pointwise exact log-likelihood for each posterior draw, shaped ``draws' leading dims + (T,)``."""
    lead, flat = _flatten_draws(model, draws)
    y = jnp.asarray(y)

    @jax.jit
    def all_draws(values):
        return jax.vmap(lambda v: pointwise_loglik(model, model.params_type(**v), y))(values)

    return np.asarray(all_draws(flat)).reshape(lead + (y.shape[0],))


def predictive_draws(model, draws: dict, key):
    """Replicated ``y_rep_t ~ p(y_t | y_{1:t-1}, theta)`` per draw, from the draw's ``vol`` path.

    The conditional standard deviation ``vol`` (a deterministic site of the program) fixes the state the
    emission needs, so no second filtering pass is run.
    """
    lead, flat = _flatten_draws(model, draws)
    vol = jnp.reshape(jnp.asarray(draws["vol"]), (-1, np.shape(draws["vol"])[-1]))

    @jax.jit
    def all_draws(keys, values, vol_path):
        def one(key_i, v, vol_i):
            params = model.params_type(**v)
            return model.emission(params, model.state_from_variance(params, vol_i**2)).sample(key_i)

        return jax.vmap(one)(keys, values, vol_path)

    keys = jax.random.split(key, vol.shape[0])
    return np.asarray(all_draws(keys, flat, vol)).reshape(lead + (vol.shape[-1],))


def check_variance_start(model, allowed: tuple[str, ...]) -> None:
    """Validate ``model.variance_start`` (one of ``allowed`` or a positive number) and store it as a float."""
    start = model.variance_start
    if isinstance(start, str):
        if start not in allowed:
            names = ", ".join(repr(a) for a in allowed)
            raise ValueError(f"variance_start must be one of {names} or a positive number, got {start!r}")
    elif isinstance(start, bool) or not isinstance(start, (int, float)) or not np.isfinite(start) or start <= 0:
        raise ValueError(f"variance_start must be a positive finite number when numeric, got {start!r}")
    else:
        object.__setattr__(model, "variance_start", float(start))


def store_priors(model, defaults: dict) -> None:
    """Merge the user's priors into ``defaults`` and keep them in hashable form on the (frozen) model.

    The user's priors become a tuple because models hash and compare by value (a static ``jit`` argument).
    """
    merged = _base.merge_priors(defaults, model.priors, model.param_names)
    object.__setattr__(model, "_prior_items", tuple((k, merged[k]) for k in model.param_names
                                                    if model.priors and k in model.priors))
    object.__setattr__(model, "priors", None)
    object.__setattr__(model, "_merged", merged)
