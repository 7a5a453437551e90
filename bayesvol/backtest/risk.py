r"""Value at risk and expected shortfall from a predictive, exceedances, and portfolio aggregation.

Sign convention (the one of ``bayesvol.forecast``): returns are profits, the level $\alpha$ is the
tail probability (0.01 for a 99% VaR), and both risk measures are positive losses,

$$
\mathrm{VaR}_\alpha = -q_\alpha(y), \qquad \mathrm{ES}_\alpha = -E[y \mid y \le q_\alpha(y)],
$$

so a return $y_t$ is an exceedance (a hit) when $y_t < -\mathrm{VaR}_t$. The return quantile
that rugarch's ``VaRTest`` takes is $-\mathrm{VaR}_t$.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesvol.backtest._checks import as_float_array, as_series, check_level, check_weights, index_of, same_length
from bayesvol.backtest.predictive import NormalPredictive, as_predictive

__all__ = ["exceedances", "expected_shortfall", "portfolio_normal", "portfolio_returns", "value_at_risk"]


def value_at_risk(predictive, level: float):
    r"""Value at risk $\mathrm{VaR}_\alpha = -q_\alpha$ of each predictive, as a positive loss.

    Parameters
    ----------
    predictive : NormalPredictive, StudentTPredictive, DrawsPredictive or array_like
        The predictive distributions; an array is read as draws with the draw axis first, shape
        ``(num_draws,)`` or ``(num_draws, T)``.
    level : float
        Tail probability $\alpha$ in (0, 0.5): 0.01 for the 99% VaR.

    Returns
    -------
    float or numpy.ndarray
        One VaR per time step (a float for a single distribution).

    Notes
    -----
    $\mathrm{VaR}_\alpha(y_t) = -F_t^{-1}(\alpha)$: the loss exceeded with probability $\alpha$.
    Normal: $-(\mu_t + \sigma_t\Phi^{-1}(\alpha))$; unit-variance Student-t:
    $-(\mu_t + \sigma_t\sqrt{(\nu-2)/\nu}\,F_\nu^{-1}(\alpha))$; draws: minus the empirical
    $\alpha$-quantile (linear interpolation).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import NormalPredictive, value_at_risk
    >>> round(value_at_risk(NormalPredictive(0.0, 1.0), 0.01), 4)
    2.3263
    >>> draws = np.random.default_rng(0).standard_normal((100_000, 2)) * [1.0, 2.0]
    >>> value_at_risk(draws, 0.01).round(1)
    array([2.3, 4.7])
    """
    return as_predictive(predictive).value_at_risk(check_level(level))


def expected_shortfall(predictive, level: float):
    r"""Expected shortfall $\mathrm{ES}_\alpha = -E[y \mid y \le q_\alpha]$ of each predictive.

    Parameters
    ----------
    predictive : NormalPredictive, StudentTPredictive, DrawsPredictive or array_like
        As for [`value_at_risk`][bayesvol.backtest.value_at_risk].
    level : float
        Tail probability $\alpha$ in (0, 0.5).

    Returns
    -------
    float or numpy.ndarray
        One ES per time step, a positive loss at least as large as the VaR.

    Notes
    -----
    $\mathrm{ES}_\alpha = -\frac1\alpha\int_0^\alpha F^{-1}(u)\,du$. Normal:
    $-\mu + \sigma\varphi(\Phi^{-1}(\alpha))/\alpha$; unit-variance Student-t with
    $c = \sigma\sqrt{(\nu-2)/\nu}$, $t_\alpha = F_\nu^{-1}(\alpha)$:
    $-\mu + c\,\frac{\nu + t_\alpha^2}{\nu-1}\frac{f_\nu(t_\alpha)}{\alpha}$; draws: the same integral
    for the empirical distribution of the draws (see [`DrawsPredictive`][bayesvol.backtest.DrawsPredictive]).

    Examples
    --------
    >>> from bayesvol.backtest import NormalPredictive, expected_shortfall
    >>> round(expected_shortfall(NormalPredictive(0.0, 1.0), 0.025), 4)
    2.3378
    """
    return as_predictive(predictive).expected_shortfall(check_level(level))


def exceedances(returns, var) -> np.ndarray:
    r"""The hit sequence $I_t = 1\{y_t < -\mathrm{VaR}_t\}$ (1 where the loss exceeds the VaR).

    Parameters
    ----------
    returns : array_like or pandas.Series
        Realised returns, one per time step.
    var : float or array_like
        The VaR forecast for each time step (positive loss), or one value for all.

    Returns
    -------
    numpy.ndarray
        int64 zeros and ones, one per time step.

    Examples
    --------
    >>> from bayesvol.backtest import exceedances
    >>> exceedances([0.5, -2.5, -1.0, -3.0], 2.0)
    array([0, 1, 0, 1])
    """
    y = as_series(returns, "returns")
    v = as_float_array(var, "var")
    if v.ndim == 0:
        v = np.full_like(y, float(v))
    elif v.ndim != 1:
        raise ValueError(f"var must be one-dimensional (one VaR per time step); got shape {v.shape}")
    same_length(returns=y, var=v)
    return (y < -v).astype(np.int64)


def portfolio_returns(returns, weights):
    r"""Portfolio returns $w_t^\top y_t$ of asset returns or of draws of them.

    Parameters
    ----------
    returns : array_like or pandas.DataFrame
        Assets on the last axis: ``(T, N)`` realised returns, ``(num_draws, T, N)`` predictive draws, or
        ``(N,)``. A DataFrame gives a Series with its index.
    weights : array_like
        ``(N,)`` fixed weights, or ``(T, N)`` one row per time step; each row must sum to one.

    Returns
    -------
    numpy.ndarray, float or pandas.Series
        The input with the asset axis summed out.

    Notes
    -----
    Returns in percent log returns aggregate only approximately (exactly for simple returns); the weighted
    sum is the usual first-order portfolio return.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import portfolio_returns
    >>> portfolio_returns(np.array([[1.0, -1.0], [2.0, 0.0]]), [0.25, 0.75])
    array([-0.5,  0.5])
    """
    values = as_float_array(returns, "returns")
    if values.ndim < 1:
        raise ValueError("returns must have the assets on its last axis")
    num_timesteps = values.shape[-2] if values.ndim >= 2 else None
    w = check_weights(weights, values.shape[-1], num_timesteps)
    if w.ndim == 2 and values.ndim < 2:
        raise ValueError("time-varying weights need returns with a time axis, shape (T, N) or (num_draws, T, N)")
    out = np.sum(values * w, axis=-1)
    index = index_of(returns)
    if index is not None and out.ndim == 1:
        return pd.Series(out, index=index, name="portfolio")
    return float(out) if out.ndim == 0 else out


def portfolio_normal(mean, covariance, weights) -> NormalPredictive:
    r"""The normal predictive of a portfolio from a multivariate normal predictive of the assets.

    Parameters
    ----------
    mean : array_like
        Predictive means, ``(T, N)`` or ``(N,)`` (zeros for a zero-mean model).
    covariance : array_like
        Predictive covariance matrices, ``(T, N, N)`` or ``(N, N)``.
    weights : array_like
        ``(N,)`` or ``(T, N)``, each row summing to one.

    Returns
    -------
    NormalPredictive
        With ``loc`` $w_t^\top\mu_t$ and ``scale`` $\sqrt{w_t^\top\Sigma_t w_t}$.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import portfolio_normal
    >>> p = portfolio_normal(np.zeros(2), np.array([[1.0, 0.5], [0.5, 1.0]]), [0.5, 0.5])
    >>> round(float(p.scale) ** 2, 4)
    0.75
    """
    mu = as_float_array(mean, "mean")
    cov = as_float_array(covariance, "covariance")
    if cov.ndim not in (2, 3) or cov.shape[-1] != cov.shape[-2]:
        raise ValueError(f"covariance must be (N, N) or (T, N, N); got shape {cov.shape}")
    num_assets = cov.shape[-1]
    if mu.shape[-1:] != (num_assets,) or mu.ndim > 2:
        raise ValueError(f"mean must be (N,) or (T, N) with N = {num_assets}; got shape {mu.shape}")
    if cov.ndim == 3 and mu.ndim == 2:
        same_length(mean=mu, covariance=cov)
    num_timesteps = cov.shape[0] if cov.ndim == 3 else (mu.shape[0] if mu.ndim == 2 else None)
    w = check_weights(weights, num_assets, num_timesteps)
    if not np.allclose(cov, np.swapaxes(cov, -1, -2), rtol=1e-10, atol=1e-12):
        raise ValueError("covariance must be symmetric")
    loc = np.sum(mu * w, axis=-1)
    variance = np.einsum("...i,...ij,...j->...", w, cov, w)
    if np.any(variance <= 0):
        raise ValueError("the portfolio variance w' Sigma w is not positive for some time step; "
                         "check that the covariance matrices are positive definite")
    return NormalPredictive(loc, np.sqrt(variance))
