"""The public log-likelihood: a number at given parameters, or a pure JAX function to differentiate.

[`log_likelihood`][bayesvol.log_likelihood] checks its inputs and returns a float (or the pointwise terms as numpy), so
it cannot run under ``jax.grad`` or ``jax.jit``; [`log_likelihood_fn`][bayesvol.log_likelihood_fn] checks the data and
options once and returns a pure JAX function of the parameters that can.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import bayesvol.inference.registry as registry
from bayesvol.models import _base

__all__ = ["log_likelihood", "log_likelihood_fn"]


def _row(model, method: str) -> registry.Method:
    row = registry.lookup(model, method)
    if row.loglik is None:
        raise ValueError(f"method {method!r} of {model!r} is an estimator without a likelihood of its own; "
                         f"evaluate the log-likelihood with one of {', '.join(registry.available(model))}")
    return row


def _is_traced(tree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def log_likelihood(model, params, y, method: str = "exact", *, pointwise: bool = False, **options):
    """Log-likelihood of ``y`` under ``model`` at ``params``, all constants included.

    Parameters
    ----------
    model : bayesvol model
    params : <Model>Params or dict
        Parameter values by name, each with the shape its model expects (scalars for the univariate
        families).
    y : array_like or pandas object
        Data (checked as described in the input-checks page of the documentation).
    method : str
        ``"exact"`` for observation-driven models (GARCH family); for latent-state models a simulated or
        approximate method such as ``"pf"``, ``"eis"``, ``"bellman"``, ``"qml"`` where registered.
    pointwise : bool
        Return the per-observation terms ``log p(y_t | y_{1:t-1})`` instead of their sum.
    **options
        Passed to the method (e.g. ``num_particles``, ``seed``).

    Returns
    -------
    float or numpy.ndarray

    Raises
    ------
    TypeError
        When called on traced values (inside ``jax.grad``, ``jax.jit`` or ``jax.vmap``): differentiate or
        compile [`log_likelihood_fn`][bayesvol.log_likelihood_fn] instead.
    ValueError
        For bad data or parameters, and when the method's value is NaN (a numerical breakdown is reported,
        never returned).
    """
    if _is_traced((params, y)):
        raise TypeError("bayesvol.log_likelihood returns a Python float and cannot run under jax.grad, jax.jit or "
                        "jax.vmap; use f = bayesvol.log_likelihood_fn(model, y, method=...), a pure JAX function "
                        "of the parameters, and differentiate or compile f (e.g. jax.grad(f)(params))")
    row = _row(model, method)
    model = model.bind_data(y)
    data = model.validate_data(y)
    params = _base.as_params(model, params)
    values = np.asarray(row.loglik(model, params, jnp.asarray(data.values), **options))
    broken = np.isnan(values) | np.isposinf(values)
    if broken.any():
        first = int(np.flatnonzero(broken.ravel())[0])
        shown = {name: np.asarray(getattr(params, name)).round(6).tolist() for name in model.param_names}
        raise ValueError(f"the {method!r} log-likelihood of {model.describe()} is {values.ravel()[first]} (first "
                         f"at observation {first}) at {shown}: the computation broke down numerically; check "
                         "that the parameters are not at the edge of their support and that y is in sensible "
                         f"units (percent returns), or use another method ({', '.join(registry.available(model))})")
    return values if pointwise else float(values.sum())


def log_likelihood_fn(model, y, method: str = "exact", *, pointwise: bool = False, **options) -> Callable:
    """The log-likelihood of ``y`` as a pure JAX function of the parameters, for ``jax.grad``, ``jit``, ``vmap``.

    The data, the method and its options are checked once, here; the returned function maps parameters (a
    dict or ``<Model>Params``) to the total log-likelihood (a JAX scalar) or, with ``pointwise=True``, to
    the per-observation terms. It is the function [`bayesvol.fit`][bayesvol.fit] differentiates: exact for the
    observation-driven families; for simulated methods (``"pf"``, ``"eis"``) the random numbers are fixed
    by ``seed`` (common random numbers), so the function is deterministic and, with the default continuous
    resampling of the particle filter, smooth in the parameters.

    Parameters
    ----------
    model : bayesvol model
    y : array_like or pandas object
        Data, checked as in [`log_likelihood`][bayesvol.log_likelihood].
    method : str
        A likelihood method registered for the family (see [`log_likelihood`][bayesvol.log_likelihood]).
    pointwise : bool
        Return the per-observation terms instead of their sum.
    **options
        Passed to the method (e.g. ``num_particles``, ``seed``).

    Returns
    -------
    callable
        ``f(params) -> jax.Array``. Parameter shapes are checked while tracing; supports are checked only for
        concrete values, so keep traced parameters inside their supports (e.g. optimise unconstrained
        coordinates mapped through the model's ``from_unconstrained``). Methods registered as not
        differentiable (Wishart SV's particle filter) compile but have no useful gradient.

    Examples
    --------
    >>> import jax
    >>> import bayesvol
    >>> y = bayesvol.datasets.load("gbpusd")
    >>> f = jax.jit(bayesvol.log_likelihood_fn(bayesvol.models.GARCH(), y))
    >>> params = {"mu": 0.0, "omega": 0.02, "alpha": 0.05, "beta": 0.9}
    >>> grad = jax.grad(f)(params)
    >>> sorted(grad)
    ['alpha', 'beta', 'mu', 'omega']
    >>> bool(abs(float(f(params)) - bayesvol.log_likelihood(bayesvol.models.GARCH(), params, y)) < 1e-8)
    True
    """
    row = _row(model, method)
    model = model.bind_data(y)
    data = jnp.asarray(model.validate_data(y).values)
    loglik = row.loglik

    def fn(params):
        values = loglik(model, _base.as_params(model, params), data, **options)
        return values if pointwise else jnp.sum(values)

    fn.__doc__ = f"Log-likelihood of the data under {model.describe()} ({method!r}) as a function of the parameters."
    return fn
