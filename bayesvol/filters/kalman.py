r"""Kalman filter and Rauch–Tung–Striebel smoother for linear Gaussian state-space models, and the
quasi-maximum-likelihood (QML) Kalman filter for SV on $\log y_t^2$ (Harvey, Ruiz & Shephard 1994).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, polygamma

import bayesvol.filters._common as _common
import bayesvol.filters._driver as _driver
from bayesvol.models import _base

__all__ = [
    "KalmanFilterResult",
    "KalmanSmootherResult",
    "LinearGaussianSSM",
    "kalman_filter",
    "kalman_smoother",
    "log_chi2_moments",
    "rts_smoother",
    "sv_qml_filter",
    "sv_qml_state_space",
]

# E log chi2_1 = digamma(1/2) + log 2 = -(Euler gamma) - log 2, in closed form (no JAX computation at import)
LOG_CHI2_1_MEAN = float(-np.euler_gamma - np.log(2.0))  # -1.2704
LOG_CHI2_1_VARIANCE = float(np.pi**2 / 2.0)


class LinearGaussianSSM(NamedTuple):
    r"""A linear Gaussian state-space model.

    $$
    x_1 &\sim N(m_1, P_1), \\
    x_t &= F_t x_{t-1} + c_t + w_t, \quad w_t \sim N(0, Q_t), \quad t \ge 2, \\
    y_t &= H_t x_t + d_t + v_t, \quad v_t \sim N(0, R_t).
    $$

    Each of ``transition_*`` and ``emission_*`` is either time-invariant (shapes below) or time-varying with a
    leading time axis of length ``T``; element ``t`` of a time-varying transition array governs the step into
    $x_t$ (element 0 is unused).

    Attributes
    ----------
    initial_mean : (n,)
    initial_covariance : (n, n)
    transition_matrix : (n, n)
    transition_offset : (n,)
    transition_covariance : (n, n)
    emission_matrix : (p, n)
    emission_offset : (p,)
    emission_covariance : (p, p)
    """

    initial_mean: jax.Array
    initial_covariance: jax.Array
    transition_matrix: jax.Array
    transition_offset: jax.Array
    transition_covariance: jax.Array
    emission_matrix: jax.Array
    emission_offset: jax.Array
    emission_covariance: jax.Array


class KalmanFilterResult(NamedTuple):
    """Output of [`kalman_filter`][bayesvol.filters.kalman_filter].

    Attributes
    ----------
    log_likelihood : jax.Array
        Exact $\\log p(y_{1:T})$.
    pointwise_log_likelihood : jax.Array
        $\\log p(y_t \\mid y_{1:t-1})$, shape ``(T,)``.
    filtered_mean, filtered_covariance : jax.Array
        Moments of $x_t \\mid y_{1:t}$, shapes ``(T, n)`` and ``(T, n, n)``.
    predicted_mean, predicted_covariance : jax.Array
        Moments of $x_t \\mid y_{1:t-1}$.

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


class KalmanSmootherResult(NamedTuple):
    """Output of [`kalman_smoother`][bayesvol.filters.kalman_smoother]: moments of $x_t \\mid y_{1:T}$ and the filter's
output
    (older names ``smoothed_means``, ``smoothed_covariances`` stay readable)."""

    smoothed_mean: jax.Array
    smoothed_covariance: jax.Array
    filtered: KalmanFilterResult

    smoothed_means = _driver.alias("smoothed_mean")
    smoothed_covariances = _driver.alias("smoothed_covariance")


_BASE_NDIM = {"transition_matrix": 2, "transition_offset": 1, "transition_covariance": 2,
              "emission_matrix": 2, "emission_offset": 1, "emission_covariance": 2}


def _per_step(ssm: LinearGaussianSSM, num_steps: int) -> dict:
    """Time-varying arrays with a leading axis of length ``num_steps``; time-invariant ones broadcast."""
    out = {}
    for name, base_ndim in _BASE_NDIM.items():
        value = jnp.asarray(getattr(ssm, name), dtype=jnp.float64)
        if value.ndim == base_ndim:
            value = jnp.broadcast_to(value, (num_steps,) + value.shape)
        elif value.ndim != base_ndim + 1 or value.shape[0] != num_steps:
            raise ValueError(f"{name} must have {base_ndim} dims (time-invariant) or {base_ndim + 1} with a leading "
                             f"time axis of length {num_steps}; got shape {value.shape}")
        out[name] = value
    return out


def _check(ssm: LinearGaussianSSM, y):
    y = _common.check_observations(y, allow_missing=True)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"y must have shape (T,) or (T, p); got {y.shape}")
    steps = _per_step(ssm, y.shape[0])
    mean = jnp.asarray(ssm.initial_mean, dtype=jnp.float64)
    cov = jnp.asarray(ssm.initial_covariance, dtype=jnp.float64)
    n, p = mean.shape[0], y.shape[1]
    expected = {"transition_matrix": (n, n), "transition_offset": (n,), "transition_covariance": (n, n),
                "emission_matrix": (p, n), "emission_offset": (p,), "emission_covariance": (p, p)}
    if cov.shape != (n, n):
        raise ValueError(f"initial_covariance must have shape {(n, n)}, got {cov.shape}")
    for name, shape in expected.items():
        if steps[name].shape[1:] != shape:
            raise ValueError(f"{name} must have shape {shape} per time step, got {steps[name].shape[1:]}")
    return y, mean, cov, steps


def kalman_filter(ssm: LinearGaussianSSM, y) -> KalmanFilterResult:
    r"""Kalman filter: exact likelihood and filtered moments of a linear Gaussian state-space model.

    Parameters
    ----------
    ssm : LinearGaussianSSM
    y : array_like, shape (T,) or (T, p)

    Returns
    -------
    KalmanFilterResult

    Notes
    -----
    Prediction $a_t = F_t m_{t-1} + c_t$, $P_t = F_t C_{t-1} F_t^\top + Q_t$; innovation
    $v_t = y_t - H_t a_t - d_t$ with covariance $S_t = H_t P_t H_t^\top + R_t$, so
    $\log p(y_t \mid y_{1:t-1}) = \log N(v_t; 0, S_t)$; gain $K_t = P_t H_t^\top S_t^{-1}$, update
    $m_t = a_t + K_t v_t$ and, in Joseph's form (symmetric and positive semi-definite in floating
    point), $C_t = (I - K_t H_t) P_t (I - K_t H_t)^\top + K_t R_t K_t^\top$. Solves use Cholesky
    factors. Cost $O(T (n^3 + p^3))$.

    Missing entries of $y_t$ (NaN) are skipped: the update uses the observed entries only, through
    $W_t H_t$, $W_t R_t W_t + (I - W_t)$ and $W_t v_t$ with $W_t$ the diagonal 0/1
    matrix of observed entries (the unit block of the missing ones adds nothing to the density and the
    gain's columns for them are zero), so the term is the Gaussian density of the observed sub-vector; a
    step with every entry missing is a prediction step with a zero term.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import bayesvol
    >>> from bayesvol.filters import LinearGaussianSSM, kalman_filter
    >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.zeros(1), 0.1 * jnp.eye(1),
    ...                         jnp.eye(1), jnp.zeros(1), jnp.eye(1))
    >>> out = kalman_filter(ssm, jnp.array([0.3, -0.2, 0.5]))
    >>> out.filtered_mean.shape
    (3, 1)
    """
    y, mean0, cov0, steps = _check(ssm, y)
    n = mean0.shape[0]
    identity = jnp.eye(n)
    gaps = not _base.is_complete(y)

    def update(pred_mean, pred_cov, y_t, s):
        emission_matrix, emission_cov = s["emission_matrix"], s["emission_covariance"]
        num_observed = y_t.shape[0]
        if gaps:
            # Missing entries: zero rows of H and of the innovation, a unit block in R.
            observed = ~jnp.isnan(y_t)
            weight = observed.astype(y_t.dtype)
            emission_matrix = weight[:, None] * emission_matrix
            emission_cov = weight[:, None] * emission_cov * weight[None, :] + jnp.diag(1.0 - weight)
            y_t = jnp.where(observed, y_t, 0.0)
            num_observed = jnp.sum(weight)
        innovation = y_t - emission_matrix @ pred_mean - s["emission_offset"]
        if gaps:
            innovation = weight * innovation
        innovation_cov = emission_matrix @ pred_cov @ emission_matrix.T + emission_cov
        chol = jnp.linalg.cholesky(0.5 * (innovation_cov + innovation_cov.T))
        whitened = jax.scipy.linalg.solve_triangular(chol, innovation, lower=True)
        loglik = (-0.5 * whitened @ whitened - jnp.sum(jnp.log(jnp.diag(chol)))
                  - 0.5 * num_observed * jnp.log(2.0 * jnp.pi))
        gain = jax.scipy.linalg.cho_solve((chol, True), emission_matrix @ pred_cov).T
        mean = pred_mean + gain @ innovation
        factor = identity - gain @ emission_matrix
        cov = factor @ pred_cov @ factor.T + gain @ emission_cov @ gain.T
        cov = 0.5 * (cov + cov.T)
        return (mean, cov), {"pointwise_log_likelihood": loglik, "filtered_mean": mean, "filtered_covariance": cov,
                             "predicted_mean": pred_mean, "predicted_covariance": pred_cov}

    def init(inputs):
        y_0, s = inputs
        return update(mean0, cov0, y_0, s)

    def step(carry, inputs):
        mean, cov = carry
        y_t, s = inputs
        pred_mean = s["transition_matrix"] @ mean + s["transition_offset"]
        pred_cov = s["transition_matrix"] @ cov @ s["transition_matrix"].T + s["transition_covariance"]
        return update(pred_mean, 0.5 * (pred_cov + pred_cov.T), y_t, s)

    return _driver.run_filter(KalmanFilterResult, init, step, (y, steps))


def kalman_smoother(ssm: LinearGaussianSSM, y) -> KalmanSmootherResult:
    r"""Rauch–Tung–Striebel smoother: moments of $x_t \mid y_{1:T}$.

    Parameters
    ----------
    ssm : LinearGaussianSSM
    y : array_like, shape (T,) or (T, p)

    Returns
    -------
    KalmanSmootherResult

    Notes
    -----
    Backwards from $t = T - 1$: $G_t = C_t F_{t+1}^\top P_{t+1}^{-1}$,
    $\hat m_t = m_t + G_t(\hat m_{t+1} - a_{t+1})$,
    $\hat C_t = C_t + G_t (\hat C_{t+1} - P_{t+1}) G_t^\top$, with $(a, P)$ the predicted and
    $(m, C)$ the filtered moments.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import bayesvol
    >>> from bayesvol.filters import LinearGaussianSSM, kalman_smoother
    >>> ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.zeros(1), 0.1 * jnp.eye(1),
    ...                         jnp.eye(1), jnp.zeros(1), jnp.eye(1))
    >>> kalman_smoother(ssm, jnp.array([0.3, -0.2, 0.5])).smoothed_mean.shape
    (3, 1)
    """
    filtered = kalman_filter(ssm, y)
    matrices = _per_step(ssm, filtered.filtered_mean.shape[0])["transition_matrix"]
    mean, cov = rts_smoother(filtered, matrices)
    return KalmanSmootherResult(smoothed_mean=mean, smoothed_covariance=cov, filtered=filtered)


def rts_smoother(filtered, transition_matrix):
    r"""The Rauch–Tung–Striebel backward pass over the output of a Kalman-type filter.

    Parameters
    ----------
    filtered : KalmanFilterResult or BellmanFilterResult
        Anything with ``filtered_mean``, ``filtered_covariance``, ``predicted_mean`` and
        ``predicted_covariance``, shapes ``(T, n)`` and ``(T, n, n)``.
    transition_matrix : jax.Array, shape (T, n, n)
        $F_t$ (element 0 unused), or for a non-linear state equation its Jacobian at the filtered state.

    Returns
    -------
    (smoothed_mean, smoothed_covariance)
        Shapes ``(T, n)`` and ``(T, n, n)``; the last step equals the filter's.
    """

    def step(carry, inputs):
        next_mean, next_cov = carry
        mean, cov, pred_mean_next, pred_cov_next, matrix_next = inputs
        chol = jnp.linalg.cholesky(pred_cov_next)
        gain = jax.scipy.linalg.cho_solve((chol, True), matrix_next @ cov).T
        smoothed_mean = mean + gain @ (next_mean - pred_mean_next)
        smoothed_cov = cov + gain @ (next_cov - pred_cov_next) @ gain.T
        smoothed_cov = 0.5 * (smoothed_cov + smoothed_cov.T)
        return (smoothed_mean, smoothed_cov), (smoothed_mean, smoothed_cov)

    last = (filtered.filtered_mean[-1], filtered.filtered_covariance[-1])
    _, (means, covs) = _driver.scan_steps(
        step,
        (filtered.filtered_mean[:-1], filtered.filtered_covariance[:-1], filtered.predicted_mean[1:],
         filtered.predicted_covariance[1:], transition_matrix[1:]),
        carry=last, reverse=True,
    )
    return jnp.concatenate([means, last[0][None]]), jnp.concatenate([covs, last[1][None]])


def log_chi2_moments(nu=None):
    r"""Mean and variance of $\log \varepsilon_t^2$ for SV's standardised errors.

    Normal errors: $\psi(1/2) + \log 2 \approx -1.2704$ and $\pi^2/2$. Unit-variance Student-t
    errors with $\nu$ degrees of freedom, $\varepsilon = \sqrt{(\nu-2)/\nu}\, Z/\sqrt{X/\nu}$,
    $X \sim \chi^2_\nu$: mean $\log(\nu - 2) + \psi(1/2) - \psi(\nu/2)$ and variance
    $\pi^2/2 + \psi'(\nu/2)$.
    """
    if nu is None:
        return jnp.asarray(LOG_CHI2_1_MEAN), jnp.asarray(LOG_CHI2_1_VARIANCE)
    return (jnp.log(nu - 2.0) + digamma(0.5) - digamma(nu / 2.0),
            LOG_CHI2_1_VARIANCE + polygamma(1, nu / 2.0))


def _log_squares(y, offset):
    """``log(y^2 + c)``; ``c = 0`` unless some ``y_t == 0``, then ``c = 1e-3 * mean(y^2)`` over the observed
    ``y_t`` (or ``offset``). A missing ``y_t`` (NaN) stays NaN, which the Kalman filter skips."""
    squares = y**2
    if offset is None:
        offset = jnp.where(jnp.any(squares == 0.0), 1e-3 * jnp.mean(squares, where=~jnp.isnan(squares)), 0.0)
    return jnp.log(squares + offset)


def sv_qml_state_space(model, params) -> LinearGaussianSSM:
    r"""The linear Gaussian approximation of SV used by QML: $\log y_t^2 = h_t + \log\varepsilon_t^2$.

    The measurement error $\log\varepsilon_t^2$ is replaced by a normal with its exact mean and variance
    (`log_chi2_moments`); the state equation is SV's own.
    """
    if getattr(model, "leverage", False):
        raise ValueError("QML on log y^2 loses the sign of the returns, so it cannot estimate leverage; "
                         "use method='pf', 'eis' or 'bellman' for SV(leverage=True)")
    params = _common.model_params(model, params)
    mean_eps, var_eps = log_chi2_moments(params.nu if model.errors == "t" else None)
    mu, phi, sigma = params.mu, params.phi, params.sigma
    return LinearGaussianSSM(
        initial_mean=jnp.reshape(mu, (1,)),
        initial_covariance=jnp.reshape(sigma**2 / (1.0 - phi**2), (1, 1)),
        transition_matrix=jnp.reshape(phi, (1, 1)),
        transition_offset=jnp.reshape(mu * (1.0 - phi), (1,)),
        transition_covariance=jnp.reshape(sigma**2, (1, 1)),
        emission_matrix=jnp.ones((1, 1)),
        emission_offset=jnp.reshape(mean_eps, (1,)),
        emission_covariance=jnp.reshape(var_eps, (1, 1)),
    )


def sv_qml_filter(model, params, y, *, offset=None) -> KalmanFilterResult:
    r"""Kalman filter of SV's linear Gaussian approximation on $x_t = \log(y_t^2 + c)$ (QML).

    Parameters
    ----------
    model : bayesvol.models.SV
        Normal or t errors, no leverage.
    params : SVParams or dict
    y : array_like, shape (T,)
        Returns; a missing one (NaN) is a prediction step of the filter.
    offset : float, optional
        The constant $c$ (Fuller's transformation). By default 0, or $10^{-3}$ times the mean of
        $y_t^2$ when some return is exactly zero.

    Returns
    -------
    KalmanFilterResult
        Its log-likelihood is the Gaussian quasi-log-likelihood of $x_{1:T}$, **not** a density of
        $y$; compare QML estimates, not its log-likelihood values, with the other methods.

    Notes
    -----
    Harvey, Ruiz & Shephard (1994): $\log y_t^2 = h_t + \log\varepsilon_t^2$ is a linear state-space
    model with non-Gaussian measurement noise of known mean ($-1.2704$ for normal errors) and
    variance ($\pi^2/2$). Treating the noise as Gaussian gives consistent but inefficient estimates;
    use the sandwich (``robust_se``) standard errors of [`bayesvol.fit`][bayesvol.fit]. Cost $O(T)$.

    Examples
    --------
    >>> import bayesvol
    >>> from bayesvol.filters import sv_qml_filter
    >>> y = bayesvol.datasets.load("gbpusd").to_numpy()
    >>> out = sv_qml_filter(bayesvol.models.SV(), {"mu": -0.7, "phi": 0.97, "sigma": 0.2}, y)
    >>> out.pointwise_log_likelihood.shape
    (945,)
    """
    y = _common.check_observations(y, allow_missing=_common.supports_missing(model))
    if y.ndim != 1:
        raise ValueError(f"y must be a univariate return series, shape (T,); got {y.shape}")
    return kalman_filter(sv_qml_state_space(model, params), _log_squares(y, offset))
