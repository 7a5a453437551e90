"""Helpers shared by the filters: input checks and a Gaussian view of NumPyro state distributions."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import bayesvol._validation as _validation
from bayesvol.models import _base


def is_concrete(value) -> bool:
    """True when ``value`` holds numbers (not a tracer inside ``jit``/``vmap``/``grad``)."""
    return not isinstance(value, jax.core.Tracer)


def supports_missing(model) -> bool:
    """Whether ``model`` declares that a missing observation (NaN) is part of it (``supports_missing`` of
    [`bayesvol.models._protocol.ModelDefaults`][bayesvol.models._protocol.ModelDefaults]). The filters also take bare
    objects with the three laws only, which do not declare it: False for them."""
    return bool(getattr(model, "supports_missing", False))


def check_observations(y, name: str = "y", *, allow_missing: bool = False) -> jax.Array:
    """``y`` as a float64 JAX array with a leading time axis; finite when its values are known.

    Known values pass the package's input checks (real numbers, a sorted date index without duplicates,
    squares that do not overflow); traced ones (under ``vmap`` over data sets) only the dtype check. With
    ``allow_missing``, NaN (a missing observation, which the filter skips) passes, but not inf, nor a series
    in which every value is missing.
    """
    if is_concrete(y):
        index = getattr(y, "index", None)
        _validation.check_time_index(index, name)
        values = _validation.real_values(y, name)
        _validation.check_magnitude(values, name, index)
    else:
        _validation.check_real_dtype(y.dtype, name)
        values = y
    y = jnp.asarray(values, dtype=jnp.float64)
    if y.ndim < 1 or y.shape[0] < 1:
        raise ValueError(f"{name} must have a leading time axis with at least one observation; got shape {y.shape}")
    if is_concrete(y):
        values = np.asarray(y)
        if allow_missing and np.isinf(values).any():
            raise ValueError(f"{name} holds inf values; drop or fill them before filtering (NaN marks a missing "
                             "observation)")
        if allow_missing and np.isnan(values).all():
            raise ValueError(f"{name} holds no observed value: all {values.shape[0]} time steps are missing (NaN)")
        if not allow_missing and not np.all(np.isfinite(values)):
            raise ValueError(f"{name} holds NaN or inf values and this model does not support missing values; "
                             "drop or fill them before filtering")
    return y


def check_positive_int(value, name: str) -> int:
    """``value`` as a Python int >= 1, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def as_key(key) -> jax.Array:
    """A PRNG key from a key, an integer seed or ``None`` (a fresh random seed)."""
    return _validation.as_key(key, "key")


def model_params(model, params):
    """``<Model>Params`` from params or a dict; tracer-safe (support checks only on concrete values)."""
    if isinstance(params, Mapping) or isinstance(params, model.params_type):
        # Check supports eagerly when the values are known, even while an outer function is traced.
        with jax.ensure_compile_time_eval():
            return _base.as_params(model, params)
    raise TypeError(f"params must be a {model.params_type.__name__} or a dict, got {type(params).__name__}")


def state_shape(model, params) -> tuple[int, ...]:
    """Shape of one latent state (``()`` for SV)."""
    first = model.initial(params)
    return tuple(first.batch_shape) + tuple(first.event_shape)


def _unwrap(d):
    """The Gaussian inside ``Independent``; the number of dims it reinterprets."""
    if isinstance(d, dist.Independent):
        return d.base_dist, d.reinterpreted_batch_ndims
    return d, 0


def gaussian_mean(d):
    """Mean of a Normal or multivariate normal state law, broadcast to its full shape."""
    base, _ = _unwrap(d)
    if isinstance(base, dist.Normal):
        return jnp.broadcast_to(base.loc, jnp.broadcast_shapes(jnp.shape(base.loc), jnp.shape(base.scale)))
    if isinstance(base, dist.MultivariateNormal):
        return jnp.broadcast_to(base.loc, base.batch_shape + base.event_shape)
    raise TypeError(_NOT_GAUSSIAN.format(type(base).__name__))


_NOT_GAUSSIAN = ("this filter needs a Gaussian state equation: initial/transition must return "
                 "numpyro Normal or MultivariateNormal distributions, got {}")


def gaussian_covariance(d, state_ndim: int):
    """Covariance of a Gaussian state law as a ``(..., n, n)`` matrix over the flattened state.

    ``state_ndim`` is the number of trailing dims that make up one state (0 for a scalar state).
    """
    base, _ = _unwrap(d)
    if isinstance(base, dist.Normal):
        shape = jnp.broadcast_shapes(jnp.shape(base.loc), jnp.shape(base.scale))
        variance = jnp.broadcast_to(base.scale**2, shape)
        variance = variance.reshape(shape[: len(shape) - state_ndim] + (-1,))
        return variance[..., :, None] * jnp.eye(variance.shape[-1])
    if isinstance(base, dist.MultivariateNormal):
        return base.covariance_matrix
    raise TypeError(_NOT_GAUSSIAN.format(type(base).__name__))


def tangent_proposal(d, grad_log_g, state_ndim: int):
    r"""Gaussian proposal from a state law ``d`` tilted by $\exp(\nabla^\top x)$.

    For $p(x) = N(m, \Sigma)$ and a log-linear factor $\exp\{\ell_0 + \nabla^\top (x - m)\}$,
    $p(x) e^{\nabla^\top (x - m)} = e^{\nabla^\top \Sigma \nabla / 2} N(x; m + \Sigma\nabla, \Sigma)$.
    Returns the tilted distribution, its mean shift and $\nabla^\top \Sigma \nabla / 2$ per particle.
    """
    base, reinterpreted = _unwrap(d)
    if isinstance(base, dist.Normal):
        variance = base.scale**2
        shift = variance * grad_log_g
        half_quad = 0.5 * jnp.sum((grad_log_g * shift).reshape(shift.shape[: shift.ndim - state_ndim] + (-1,)),
                                  axis=-1)
        tilted = dist.Normal(base.loc + shift, base.scale * jnp.ones_like(shift))
        if reinterpreted:
            tilted = tilted.to_event(reinterpreted)
        return tilted, shift, half_quad
    if isinstance(base, dist.MultivariateNormal):
        shift = jnp.einsum("...ij,...j->...i", base.covariance_matrix, grad_log_g)
        half_quad = 0.5 * jnp.sum(grad_log_g * shift, axis=-1)
        return dist.MultivariateNormal(base.loc + shift, scale_tril=base.scale_tril), shift, half_quad
    raise TypeError(_NOT_GAUSSIAN.format(type(base).__name__))


def broadcast_gaussian(d, num: int):
    """A Gaussian state law repeated ``num`` times along a new leading axis (for the first filter step)."""
    base, reinterpreted = _unwrap(d)
    if isinstance(base, dist.Normal):
        shape = (num,) + jnp.broadcast_shapes(jnp.shape(base.loc), jnp.shape(base.scale))
        out = dist.Normal(jnp.broadcast_to(base.loc, shape), jnp.broadcast_to(base.scale, shape))
        return out.to_event(reinterpreted) if reinterpreted else out
    if isinstance(base, dist.MultivariateNormal):
        size = base.event_shape[0]
        return dist.MultivariateNormal(jnp.broadcast_to(base.loc, (num, size)),
                                       scale_tril=jnp.broadcast_to(base.scale_tril, (num, size, size)))
    raise TypeError(_NOT_GAUSSIAN.format(type(base).__name__))


def check_nonnegative_int(value, name: str) -> int:
    """``value`` as a Python int >= 0, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def is_gaussian(d) -> bool:
    """True for a Normal or multivariate normal state law (possibly wrapped in ``Independent``)."""
    base, _ = _unwrap(d)
    return isinstance(base, dist.Normal | dist.MultivariateNormal)


def gaussian_from_normals(d, z):
    """``loc + scale z`` for a Gaussian state law ``d`` and standard normals ``z`` of the law's full shape,
    computed in the law's own precision (``z`` may come in a lower one)."""
    base, _ = _unwrap(d)
    if isinstance(base, dist.Normal):
        loc, scale = base.loc, base.scale
        return loc + scale * z.astype(jnp.result_type(loc, scale))
    if isinstance(base, dist.MultivariateNormal):
        return base.loc + jnp.einsum("...ij,...j->...i", base.scale_tril, z.astype(base.loc.dtype))
    raise TypeError(_NOT_GAUSSIAN.format(type(base).__name__))
