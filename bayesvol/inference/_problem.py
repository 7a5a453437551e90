"""One estimation problem: a model, its likelihood and options, and the maps between parameter spaces.

`Problem` is hashable, so compiled objectives, gradients and Hessians are cached per model,
likelihood and options and reused across fits of the same shape. The single fit (`.mle`) and the
batch fit (`.batch`) both work on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = ["Problem", "bucket_length", "constrain_flat", "free_shapes", "labels", "objective", "objective_value",
           "objective_value_and_grad", "options_key", "pad_to_length", "split", "to_python", "unconstrain_flat"]

# Length buckets: 2^k times one of these fractions, so a padded series is at most 25% (on average about 11%)
# longer than the data, and a factor of ten in length spans about 13 buckets.
_BUCKET_FRACTIONS = (1.0, 1.25, 1.5, 1.75)
# Shortest bucket: below it, one compiled program serves every length (a scan of 64 steps costs nothing).
_SMALLEST_BUCKET = 64


def labels(model, shapes) -> list[str]:
    """Labels of the flattened parameters; ``shapes`` holds each parameter's shape in ``param_names`` order."""
    labels = []
    for name, shape in zip(model.param_names, shapes, strict=True):
        if len(shape) == 0:
            labels.append(name)
        else:
            labels.extend(f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(shape))
    return labels


def split(flat: np.ndarray, names, shapes) -> dict:
    """Name -> value (float, or array for matrix parameters) from a flat vector in ``names`` order."""
    out, position = {}, 0
    for name, shape in zip(names, shapes, strict=True):
        size = int(np.prod(shape, dtype=int))
        out[name] = to_python(np.asarray(flat[position:position + size]).reshape(shape))
        position += size
    return out


def to_python(value):
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr


class ById:
    """Hashes and compares by identity: a static jit argument for options that are not hashable."""

    def __init__(self, value):
        self.value = value


def options_key(options: dict):
    items = tuple(sorted(options.items()))
    try:
        hash(items)
    except TypeError:
        return ById(items)
    return items


@dataclass(frozen=True)
class Problem:
    """Everything static about one estimation problem, so compiled functions are reused across fits.

    ``loglik`` is the registered pointwise log-likelihood of ``method`` (see `.registry`);
    ``free_shapes`` and ``shapes`` are the shapes of the unconstrained and the natural parameters.
    ``stationary`` restricts the estimate to the model's ``is_stationary`` region (the likelihood is
    ``-inf`` outside it, a wall that the optimiser's line search respects).
    """

    model: object
    method: str
    loglik: Callable
    free_shapes: tuple
    shapes: tuple
    options: object
    stationary: bool = True

    @property
    def names(self):
        return self.model.param_names

    def option_dict(self) -> dict:
        items = self.options.value if isinstance(self.options, ById) else self.options
        return dict(items)

    def unravel_free(self, u_flat) -> dict:
        template = tuple(jnp.zeros(shape) for shape in self.free_shapes)
        return dict(zip(self.names, ravel_pytree(template)[1](u_flat), strict=True))

    def unravel(self, theta_flat) -> dict:
        template = tuple(jnp.zeros(shape) for shape in self.shapes)
        return dict(zip(self.names, ravel_pytree(template)[1](theta_flat), strict=True))

    def ravel(self, values: dict):
        """Flatten name -> value in the order of ``param_names`` (a dict would be flattened by sorted key)."""
        return ravel_pytree(tuple(jnp.asarray(values[n]) for n in self.names))[0]

    def constrain(self, u_flat):
        return self.model.from_unconstrained(self.unravel_free(u_flat))

    def pointwise(self, params, y):
        terms = self.loglik(self.model, params, y, **self.option_dict())
        if self.stationary:
            terms = jnp.where(self.model.is_stationary(params), terms, -jnp.inf)
        return terms

    def pointwise_flat(self, theta_flat, y):
        return self.pointwise(self.model.params_type(**self.unravel(theta_flat)), y)


def objective(problem: Problem, u_flat, y, num_steps=None):
    """Mean negative log-likelihood at the unconstrained ``u_flat``, ``+inf`` where it is not finite.

    The mean is over ``num_steps`` time steps (by default ``y.shape[0]``): a series padded at its end to a
    length bucket (see `pad_to_length`) passes its own length, a traced number, so that the compiled
    program is shared by every length in the bucket and the objective, its gradient and the optimiser's
    gradient tolerance are those of the unpadded series.
    """
    terms = problem.pointwise(problem.constrain(u_flat), y)
    value = -jnp.sum(terms) / (y.shape[0] if num_steps is None else num_steps)
    return jnp.where(jnp.isfinite(value), value, jnp.inf)


objective_value = jax.jit(objective, static_argnums=0)


objective_value_and_grad = jax.jit(jax.value_and_grad(objective, argnums=1), static_argnums=0)


@partial(jax.jit, static_argnums=0)
def unconstrain_flat(problem: Problem, params):
    return problem.ravel(problem.model.to_unconstrained(params))


@partial(jax.jit, static_argnums=0)
def constrain_flat(problem: Problem, u_flat):
    params = problem.constrain(u_flat)
    return problem.ravel(params._asdict())


@partial(jax.jit, static_argnums=0)
def loglik_total(problem: Problem, theta_flat, y):
    return jnp.sum(problem.pointwise_flat(theta_flat, y))


def bucket_length(num_steps: int) -> int:
    """The length bucket of a series of ``num_steps`` time steps: the smallest ``2^k * f >= num_steps`` with
    ``f`` in 1, 1.25, 1.5, 1.75 (and at least 64), e.g. 5000 -> 5120, 5200 -> 6144, 300 -> 320."""
    num_steps = int(num_steps)
    if num_steps <= _SMALLEST_BUCKET:
        return _SMALLEST_BUCKET
    octave = 1 << (num_steps.bit_length() - 1)  # the largest power of two <= num_steps, at least 64
    # 2^k * f is a whole number for every f above since 2^k >= 64.
    return next(int(octave * f) for f in _BUCKET_FRACTIONS + (2.0,) if octave * f >= num_steps)


def pad_to_length(values, length: int) -> np.ndarray:
    """``values`` (time first) followed by missing steps (NaN) up to ``length`` steps.

    A model with ``supports_missing`` gives a missing step a log-likelihood term of zero and moves its
    state on without it, so the terms of the first ``T`` steps, and their sum, are those of the unpadded
    series (the state after the data is not).
    """
    values = np.asarray(values, dtype=np.float64)
    extra = int(length) - values.shape[0]
    if extra < 0:
        raise ValueError(f"cannot pad {values.shape[0]} time steps to a length of {length}")
    return np.concatenate([values, np.full((extra,) + values.shape[1:], np.nan)], axis=0)


def free_shapes_uncached(model, shapes: tuple) -> tuple:
    transforms = model.param_transforms()
    names = model.param_names
    structs = {n: jax.ShapeDtypeStruct(shape, jnp.float64) for n, shape in zip(names, shapes, strict=True)}
    free = jax.eval_shape(lambda p: {n: transforms[n].inv(p[n]) for n in names}, structs)
    return tuple(tuple(free[n].shape) for n in names)


free_shapes_cached = lru_cache(maxsize=64)(free_shapes_uncached)


def free_shapes(model, shapes: tuple) -> tuple:
    """Shapes of the unconstrained coordinates of natural parameters of the given shapes.

    Tracing the transforms costs a few milliseconds, a tenth of a warm GARCH fit, so the answer is cached
    per (hashable) model.
    """
    try:
        return free_shapes_cached(model, shapes)
    except TypeError:  # a model that does not hash
        return free_shapes_uncached(model, shapes)
