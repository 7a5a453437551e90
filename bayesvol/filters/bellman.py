r"""The Bellman filter (Lange 2024): a mode-based filter for state-space models with a Gaussian state
equation, with exact derivatives and Newton's method inside one ``lax.scan``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from bayesvol.filters import _common, _newton

__all__ = ["BellmanFilterResult", "bellman_filter", "run_bellman_filter"]


class BellmanFilterResult(NamedTuple):
    """Output of the Bellman filter (``T`` steps, flattened state of size ``n``).

    Attributes
    ----------
    log_likelihood : jax.Array
        Approximate :math:`\\log p(y_{1:T} \\mid \\theta)`, the sum of ``predictive_log_likelihoods``.
    predictive_log_likelihoods : jax.Array
        Approximate :math:`\\log p(y_t \\mid y_{1:t-1}, \\theta)`, shape ``(T,)``.
    filtered_means, filtered_covariances : jax.Array
        Updated state (the mode) and its covariance, shapes ``(T, n)`` and ``(T, n, n)``.
    predicted_means, predicted_covariances : jax.Array
        Predicted state and covariance before seeing :math:`y_t`, same shapes.
    """

    log_likelihood: jax.Array
    predictive_log_likelihoods: jax.Array
    filtered_means: jax.Array
    filtered_covariances: jax.Array
    predicted_means: jax.Array
    predicted_covariances: jax.Array


def run_bellman_filter(log_observation_density: Callable, predict: Callable, initial_mean, initial_covariance,
                       y, num_newton_steps: int = 10) -> BellmanFilterResult:
    r"""The Bellman filter on functions: the engine behind :func:`bellman_filter`, for any state dimension.

    Parameters
    ----------
    log_observation_density : callable
        ``(x, y_t) -> log p(y_t | x)`` for a flat state ``x`` of shape ``(n,)``; a scalar, twice
        differentiable in ``x``.
    predict : callable
        ``(mean, covariance, y_prev) -> (predicted_mean, predicted_covariance)``: the prediction step of the
        state equation (exact for a linear Gaussian one).
    initial_mean, initial_covariance : array_like
        Law of the first state before :math:`y_1`, shapes ``(n,)`` and ``(n, n)``.
    y : array_like
        Observations, leading axis time.
    num_newton_steps : int
        Newton iterations per update step (a fixed number, so the filter is differentiable).

    Returns
    -------
    BellmanFilterResult
    """
    num_newton_steps = _common.check_positive_int(num_newton_steps, "num_newton_steps")
    y = _common.check_observations(y)
    initial_mean = jnp.atleast_1d(jnp.asarray(initial_mean, dtype=jnp.float64))
    initial_covariance = jnp.atleast_2d(jnp.asarray(initial_covariance, dtype=jnp.float64))
    size = initial_mean.shape[0]
    identity = jnp.eye(size)

    def update(pred_mean, pred_cov, y_t):
        pred_chol = _newton.cholesky(pred_cov)
        precision = _newton.cho_solve(pred_chol, identity)
        found = _newton.maximise(lambda x: log_observation_density(x, y_t), pred_mean, precision, num_newton_steps)
        information = precision - found.hessian_log_g
        information = 0.5 * (information + information.T)
        info_chol = _newton.cholesky(lax.stop_gradient(information))
        # At a maximum the information is positive semi-definite; guard the numerically singular case.
        positive = jnp.all(jnp.isfinite(info_chol))
        information = jnp.where(positive, information, precision)
        info_chol = _newton.cholesky(information)
        covariance = _newton.cho_solve(info_chol, identity)
        diff = found.x - pred_mean
        log_det_pred = 2.0 * jnp.sum(jnp.log(jnp.diag(pred_chol)))
        log_det_info = 2.0 * jnp.sum(jnp.log(jnp.diag(info_chol)))
        loglik = found.log_g - 0.5 * diff @ precision @ diff - 0.5 * log_det_pred - 0.5 * log_det_info
        loglik = jnp.where(jnp.isnan(loglik), -jnp.inf, loglik)
        return found.x, 0.5 * (covariance + covariance.T), loglik

    def step(carry, inputs):
        mean, cov = carry
        y_t, y_prev = inputs
        pred_mean, pred_cov = predict(mean, cov, y_prev)
        pred_cov = 0.5 * (pred_cov + pred_cov.T)
        new_mean, new_cov, loglik = update(pred_mean, pred_cov, y_t)
        return (new_mean, new_cov), (loglik, new_mean, new_cov, pred_mean, pred_cov)

    mean0, cov0, loglik0 = update(initial_mean, initial_covariance, y[0])
    _, (logliks, means, covs, pred_means, pred_covs) = lax.scan(step, (mean0, cov0), (y[1:], y[:-1]))
    logliks = jnp.concatenate([loglik0[None], logliks])
    return BellmanFilterResult(
        log_likelihood=jnp.sum(logliks),
        predictive_log_likelihoods=logliks,
        filtered_means=jnp.concatenate([mean0[None], means]),
        filtered_covariances=jnp.concatenate([cov0[None], covs]),
        predicted_means=jnp.concatenate([initial_mean[None], pred_means]),
        predicted_covariances=jnp.concatenate([initial_covariance[None], pred_covs]),
    )


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
    Prediction: with the state equation :math:`x_t \mid x_{t-1} \sim N(f(x_{t-1}), Q(x_{t-1}))`,

    .. math:: a_{t|t-1} = f(a_{t-1|t-1}), \quad P_{t|t-1} = F P_{t-1|t-1} F^\top + Q(a_{t-1|t-1}),

    with :math:`F` the Jacobian of :math:`f` (exact when :math:`f` is affine, as for SV without leverage).
    Update: the filtered state is the maximiser of

    .. math:: J_t(x) = \log p(y_t \mid x) - \tfrac12 (x - a_{t|t-1})^\top P_{t|t-1}^{-1} (x - a_{t|t-1}),

    found by Newton's method with the exact Hessian (autodiff) and a backtracking choice of step length,
    starting at :math:`a_{t|t-1}`; :math:`P_{t|t} = (P_{t|t-1}^{-1} - \nabla^2 \log p(y_t \mid a_{t|t}))^{-1}`.
    The log-likelihood contribution is the Laplace approximation of
    :math:`\int p(y_t \mid x) N(x; a_{t|t-1}, P_{t|t-1})\, dx`,

    .. math::

        \ell_t = \log p(y_t \mid a_{t|t}) - \tfrac12 (a_{t|t} - a_{t|t-1})^\top P_{t|t-1}^{-1}
        (a_{t|t} - a_{t|t-1}) - \tfrac12 \log\det P_{t|t-1} + \tfrac12 \log\det P_{t|t},

    exact for linear Gaussian models (where the filter is the Kalman filter). Cost
    :math:`O(T K n^3)` for :math:`K` Newton steps.

    Examples
    --------
    >>> import bayesvol
    >>> from bayesvol.filters import bellman_filter
    >>> model = bayesvol.models.SV()
    >>> params = {"mu": -1.0, "phi": 0.95, "sigma": 0.2}
    >>> y = bayesvol.simulate(model, params, 200, seed=0).y
    >>> out = bellman_filter(model, params, y)
    >>> out.filtered_means.shape
    (200, 1)
    """
    num_newton_steps = _common.check_positive_int(num_newton_steps, "num_newton_steps")
    params = _common.model_params(model, params)
    y = _common.check_observations(y)
    _common.gaussian_mean(model.initial(params))  # a clear error for a non-Gaussian state equation
    return _run_model(model, params, y, num_newton_steps)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _run_model(model, params, y, num_newton_steps):
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
                              num_newton_steps)
