r"""The Bellman filter (Lange 2024): a mode-based filter for state-space models with a Gaussian state
equation, with exact derivatives and Newton's method (`bayesvol.filters._newton.laplace`) in the step
that the filter driver runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

import bayesvol.filters._common as _common
import bayesvol.filters._driver as _driver
import bayesvol.filters._newton as _newton
from bayesvol.models import _base

__all__ = ["BellmanFilterResult", "bellman_filter", "run_bellman_filter"]


class BellmanFilterResult(NamedTuple):
    """Output of the Bellman filter (``T`` steps, flattened state of size ``n``).

    Attributes
    ----------
    log_likelihood : jax.Array
        Approximate $\\log p(y_{1:T} \\mid \\theta)$, the sum of ``pointwise_log_likelihood``.
    pointwise_log_likelihood : jax.Array
        Approximate $\\log p(y_t \\mid y_{1:t-1}, \\theta)$, shape ``(T,)``.
    filtered_mean, filtered_covariance : jax.Array
        Updated state (the mode) and its covariance, shapes ``(T, n)`` and ``(T, n, n)``.
    predicted_mean, predicted_covariance : jax.Array
        Predicted state and covariance before seeing $y_t$, same shapes.

    The older plural names (``predictive_log_likelihoods``, ``filtered_means``, ...) stay readable.
    """

    log_likelihood: jax.Array
    pointwise_log_likelihood: jax.Array
    filtered_mean: jax.Array
    filtered_covariance: jax.Array
    predicted_mean: jax.Array
    predicted_covariance: jax.Array

    predictive_log_likelihoods = _driver.alias("pointwise_log_likelihood")
    filtered_means = _driver.alias("filtered_mean")
    filtered_covariances = _driver.alias("filtered_covariance")
    predicted_means = _driver.alias("predicted_mean")
    predicted_covariances = _driver.alias("predicted_covariance")


def run_bellman_filter(log_observation_density: Callable, predict: Callable, initial_mean, initial_covariance,
                       y, num_newton_steps: int = 10, *, gaps: bool | None = None) -> BellmanFilterResult:
    r"""The Bellman filter on functions: the engine behind [`bellman_filter`][bayesvol.filters.bellman_filter], for any
state dimension.

    Parameters
    ----------
    log_observation_density : callable
        ``(x, y_t) -> log p(y_t | x)`` for a flat state ``x`` of shape ``(n,)``; a scalar, twice
        differentiable in ``x``.
    predict : callable
        ``(mean, covariance, y_prev) -> (predicted_mean, predicted_covariance)``: the prediction step of the
        state equation (exact for a linear Gaussian one).
    initial_mean, initial_covariance : array_like
        Law of the first state before $y_1$, shapes ``(n,)`` and ``(n, n)``.
    y : array_like
        Observations, leading axis time; a time step with a missing value (NaN) is a prediction step only.
    num_newton_steps : int
        Newton iterations per update step (a fixed number, so the filter is differentiable).
    gaps : bool, optional
        Whether ``y`` may hold missing values; by default, whether it does (True for traced data). Without
        gaps every step is an update, as it always was.

    Returns
    -------
    BellmanFilterResult
    """
    num_newton_steps = _common.check_positive_int(num_newton_steps, "num_newton_steps")
    y = _common.check_observations(y, allow_missing=True)
    initial_mean = jnp.atleast_1d(jnp.asarray(initial_mean, dtype=jnp.float64))
    initial_covariance = jnp.atleast_2d(jnp.asarray(initial_covariance, dtype=jnp.float64))
    gaps = not _base.is_complete(y) if gaps is None else gaps

    def update(pred_mean, pred_cov, y_t):
        if not gaps:
            found = _newton.laplace(lambda x: log_observation_density(x, y_t), pred_mean, pred_cov,
                                    num_newton_steps)
            return {"pointwise_log_likelihood": found.log_evidence, "filtered_mean": found.mean,
                    "filtered_covariance": found.covariance, "predicted_mean": pred_mean,
                    "predicted_covariance": pred_cov}
        # A missing y_t (NaN; any entry of a vector) is a prediction step: the filtered moments are the
        # predicted ones and the term is zero. The density is evaluated at 0 instead and the result discarded.
        missing = jnp.any(jnp.isnan(y_t))
        y_t = jnp.where(jnp.isnan(y_t), 0.0, y_t)
        found = _newton.laplace(lambda x: log_observation_density(x, y_t), pred_mean, pred_cov, num_newton_steps)
        return {"pointwise_log_likelihood": jnp.where(missing, 0.0, found.log_evidence),
                "filtered_mean": jnp.where(missing, pred_mean, found.mean),
                "filtered_covariance": jnp.where(missing, pred_cov, found.covariance), "predicted_mean": pred_mean,
                "predicted_covariance": pred_cov}

    def init(inputs):
        out = update(initial_mean, initial_covariance, inputs[0])
        return (out["filtered_mean"], out["filtered_covariance"]), out

    def step(carry, inputs):
        mean, cov = carry
        y_t, y_prev = inputs
        pred_mean, pred_cov = predict(mean, cov, y_prev)
        out = update(pred_mean, 0.5 * (pred_cov + pred_cov.T), y_t)
        return (out["filtered_mean"], out["filtered_covariance"]), out

    return _driver.run_filter(BellmanFilterResult, init, step, (y, _driver.lagged(y)))


def bellman_filter(model, params, y, *, num_newton_steps: int = 10) -> BellmanFilterResult:
    r"""Bellman filter for a latent-state model with a Gaussian state equation.

    Parameters
    ----------
    model : latent-state model
        ``initial`` and ``transition`` return NumPyro ``Normal`` or ``MultivariateNormal`` laws (the state may
        be a vector); ``emission`` any law whose log density is twice differentiable in the state.
    params : <Model>Params or dict
    y : array_like
        Observations, leading axis time.
    num_newton_steps : int
        Newton iterations per time step.

    Returns
    -------
    BellmanFilterResult
        States are flattened: shapes ``(T, n)`` and ``(T, n, n)`` (``n = 1`` for SV).

    Notes
    -----
    Prediction: with the state equation $x_t \mid x_{t-1} \sim N(f(x_{t-1}), Q(x_{t-1}))$,

    $$
    a_{t|t-1} = f(a_{t-1|t-1}), \quad P_{t|t-1} = F P_{t-1|t-1} F^\top + Q(a_{t-1|t-1}),
    $$

    with $F$ the Jacobian of $f$ (exact when $f$ is affine, as for SV without leverage).
    Update: the filtered state is the maximiser of

    $$
    J_t(x) = \log p(y_t \mid x) - \tfrac12 (x - a_{t|t-1})^\top P_{t|t-1}^{-1} (x - a_{t|t-1}),
    $$

    found by Newton's method with the exact Hessian (autodiff) and a backtracking choice of step length,
    starting at $a_{t|t-1}$; $P_{t|t} = (P_{t|t-1}^{-1} - \nabla^2 \log p(y_t \mid a_{t|t}))^{-1}$.
    The log-likelihood contribution is the Laplace approximation of
    $\int p(y_t \mid x) N(x; a_{t|t-1}, P_{t|t-1})\, dx$,

    $$
    \ell_t = \log p(y_t \mid a_{t|t}) - \tfrac12 (a_{t|t} - a_{t|t-1})^\top P_{t|t-1}^{-1}
    (a_{t|t} - a_{t|t-1}) - \tfrac12 \log\det P_{t|t-1} + \tfrac12 \log\det P_{t|t},
    $$

    exact for linear Gaussian models (where the filter is the Kalman filter). At a missing $y_t$ (NaN,
    for a model that declares ``supports_missing``) the update is skipped: $a_{t|t} = a_{t|t-1}$,
    $P_{t|t} = P_{t|t-1}$ and $\ell_t = 0$. Cost
    $O(T K n^3)$ for $K$ Newton steps.

    Examples
    --------
    >>> import bayesvol
    >>> from bayesvol.filters import bellman_filter
    >>> model = bayesvol.models.SV()
    >>> params = {"mu": -1.0, "phi": 0.95, "sigma": 0.2}
    >>> y = bayesvol.simulate(model, params, 200, seed=0).y
    >>> out = bellman_filter(model, params, y)
    >>> out.filtered_mean.shape
    (200, 1)
    """
    num_newton_steps = _common.check_positive_int(num_newton_steps, "num_newton_steps")
    params = _common.model_params(model, params)
    y = _common.check_observations(y, allow_missing=_common.supports_missing(model))
    _common.gaussian_mean(model.initial(params))  # a clear error for a non-Gaussian state equation
    return _run_model(model, params, y, num_newton_steps, not _base.is_complete(y))


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _run_model(model, params, y, num_newton_steps, gaps):
    shape = _common.state_shape(model, params)
    state_ndim = len(shape)
    first = model.initial(params)
    initial_mean = _common.gaussian_mean(first).reshape(-1)
    initial_covariance = _common.gaussian_covariance(first, state_ndim)

    def log_observation_density(x, y_t):
        return jnp.sum(model.emission(params, x.reshape(shape)).log_prob(y_t))

    def predict(mean, cov, y_prev):
        def transition_mean(x):
            return _common.gaussian_mean(model.transition(params, x.reshape(shape), y_prev)).reshape(-1)

        jacobian = jax.jacfwd(transition_mean)(mean)
        noise = _common.gaussian_covariance(model.transition(params, mean.reshape(shape), y_prev), state_ndim)
        return transition_mean(mean), jacobian @ cov @ jacobian.T + noise

    return run_bellman_filter(log_observation_density, predict, initial_mean, initial_covariance, y,
                              num_newton_steps, gaps=gaps)
