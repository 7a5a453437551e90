r"""Residual diagnostics of a fitted volatility model, and the news-impact curve.

A well-specified model leaves standardised residuals $z_t = (y_t - m_t)/\sigma_t$ without
autocorrelation in levels or squares. The tests here are the usual ones:

* Ljung–Box (1978): $Q(h) = n(n+2)\sum_{k=1}^{h} \hat\rho_k^2/(n-k)$, with $\hat\rho_k$ the
  sample autocorrelation of the demeaned series, against $\chi^2_{h - d}$ (``model_df`` $= d$).
* Engle's (1982) ARCH-LM test: regress $z_t^2$ on a constant and $z_{t-1}^2, \dots, z_{t-h}^2$
  over the $n - h$ complete rows; $LM = (n - h)R^2$ against $\chi^2_h$.

Both are the statistics of ``statsmodels`` (``acorr_ljungbox``, ``het_arch``), checked against it in the tests.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.stats

import bayesvol._validation as _validation
from bayesvol.models import _base
from bayesvol.models._protocol import VarianceForecastModel

__all__ = ["arch_lm", "ljung_box", "news_impact", "residual_diagnostics"]


def _series(x, name: str) -> np.ndarray:
    values = np.asarray(x, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one series (1-D), got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} holds non-finite values at positions {np.flatnonzero(~np.isfinite(values))[:5]}")
    return values


def _lags(lags, n: int) -> int:
    lags = _validation.as_count(lags, "lags")
    if lags >= n - 1:
        raise ValueError(f"lags must be smaller than the number of observations minus one ({n - 1}), got {lags}")
    return lags


def ljung_box(x, lags: int = 10, *, model_df: int = 0) -> tuple[float, float]:
    """Ljung–Box portmanteau statistic of ``x`` over ``lags`` autocorrelations and its p-value.

    Parameters
    ----------
    x : array_like
        One series (e.g. standardised residuals, or their squares).
    lags : int
        Number of autocorrelations $h$.
    model_df : int
        Degrees of freedom used by the model, subtracted from $h$ for the $\\chi^2$ reference.

    Returns
    -------
    (float, float)
        The statistic $Q(h)$ and its p-value.
    """
    x = _series(x, "x")
    n = x.size
    lags = _lags(lags, n)
    if isinstance(model_df, bool) or not isinstance(model_df, (int, np.integer)) or not 0 <= model_df < lags:
        raise ValueError(f"model_df must be an integer in [0, lags), got {model_df!r}")
    centred = x - x.mean()
    denominator = centred @ centred
    if denominator <= 0.0:
        raise ValueError("x is constant; its autocorrelations are undefined")
    rho = np.array([centred[k:] @ centred[:-k] for k in range(1, lags + 1)]) / denominator
    stat = n * (n + 2.0) * np.sum(rho**2 / (n - np.arange(1, lags + 1)))
    return float(stat), float(scipy.stats.chi2.sf(stat, lags - model_df))


def arch_lm(x, lags: int = 10) -> tuple[float, float]:
    """Engle's ARCH-LM statistic of ``x`` with ``lags`` lags of $x^2$, and its p-value.

    Parameters
    ----------
    x : array_like
        One series (e.g. standardised residuals); the regression is on its squares.
    lags : int
        Lags $h$ of $x_t^2$ in the auxiliary regression.

    Returns
    -------
    (float, float)
        $LM = (n - h)R^2$ and its p-value under $\\chi^2_h$.
    """
    x = _series(x, "x")
    lags = _lags(lags, x.size)
    squared = x**2
    target = squared[lags:]
    design = np.column_stack([np.ones(target.size)] + [squared[lags - k:-k] for k in range(1, lags + 1)])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ coef
    centred = target - target.mean()
    r_squared = 1.0 - (resid @ resid) / (centred @ centred)
    stat = target.size * r_squared
    return float(stat), float(scipy.stats.chi2.sf(stat, lags))


def residual_diagnostics(std_resid, lags: int = 10, *, model_df: int = 0) -> pd.DataFrame:
    """Ljung–Box tests on the standardised residuals and their squares, and the ARCH-LM test.

    Parameters
    ----------
    std_resid : array_like, pandas.Series or pandas.DataFrame
        Standardised residuals, one series or one column per asset (e.g. ``MLEResult.std_resid``).
    lags : int
        Lags of every test.
    model_df : int
        Degrees of freedom subtracted for the Ljung–Box test of the squares (e.g. the number of
        variance parameters besides the constant, 2 for GARCH(1,1)).

    Returns
    -------
    pandas.DataFrame
        One row per test (and asset): ``statistic``, ``df`` and ``p-value``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.inference.residuals import residual_diagnostics
    >>> z = np.random.default_rng(0).standard_normal(500)
    >>> list(residual_diagnostics(z, lags=5).index)
    ['Ljung-Box z', 'Ljung-Box z^2', 'ARCH-LM']
    """
    frame = pd.DataFrame(std_resid) if np.ndim(std_resid) == 2 else None
    columns = [(None, np.asarray(std_resid))] if frame is None else list(frame.items())
    rows = {}
    for asset, values in columns:
        z = _series(values, "std_resid")
        tests = {"Ljung-Box z": (*ljung_box(z, lags), lags),
                 "Ljung-Box z^2": (*ljung_box(z**2, lags, model_df=model_df), lags - model_df),
                 "ARCH-LM": (*arch_lm(z, lags), lags)}
        for name, (stat, pvalue, df) in tests.items():
            rows[name if asset is None else (asset, name)] = {"statistic": stat, "df": df, "p-value": pvalue}
    table = pd.DataFrame.from_dict(rows, orient="index")
    if frame is not None:
        table.index = pd.MultiIndex.from_tuples(table.index, names=["asset", "test"])
    return table


def news_impact(model, params, shocks, *, variance=None) -> np.ndarray:
    r"""News-impact curve (Engle & Ng 1993): the next conditional variance as a function of today's shock.

    $\sigma^2_{t+1}(\varepsilon)$ from one step of the model's own ``update`` with today's state at the
    variance $\bar\sigma^2$ and the return $y_t = m_t + \varepsilon$, $m_t$ the conditional
    mean. For GARCH/GJR, $\omega + (\alpha + \gamma 1\{\varepsilon < 0\})\varepsilon^2 + \beta\bar\sigma^2$;
    for EGARCH, $\ln\sigma^2_{t+1} = \omega + \alpha(|z| - E|z|) + \gamma z + \beta\ln\bar\sigma^2$ with
    $z = \varepsilon/\bar\sigma$.

    Parameters
    ----------
    model : GARCH, EGARCH or IGGARCH
        A univariate observation-driven model.
    params : dict or <Model>Params
    shocks : array_like
        Values of $\varepsilon = y_t - m_t$.
    variance : float, optional
        Today's variance $\bar\sigma^2$; by default the stationary start of the model
        (``model.init_state(params, None)``): the unconditional variance of GARCH, GJR and IG-GARCH, and
        $\exp E[\ln\sigma^2_t]$ for EGARCH.

    Returns
    -------
    numpy.ndarray
        $\sigma^2_{t+1}$, the shape of ``shocks``.

    Raises
    ------
    ValueError
        For a model without a univariate variance recursion, or shocks outside the support of the return law
        (IG-GARCH's returns are bounded on one side).

    Examples
    --------
    >>> from bayesvol.models import GARCH
    >>> from bayesvol.inference.residuals import news_impact
    >>> params = {"mu": 0.0, "omega": 0.1, "alpha": 0.1, "beta": 0.8}
    >>> news_impact(GARCH(), params, [-1.0, 0.0, 1.0]).round(6).tolist()
    [1.0, 0.9, 1.0]
    """
    if not isinstance(model, VarianceForecastModel):
        raise ValueError(f"news_impact needs a univariate observation-driven model (GARCH, EGARCH, IGGARCH), "
                         f"got {model!r}")
    params = _base.as_params(model, params)
    model.check_parameters(params)
    shocks = np.asarray(shocks, dtype=np.float64)
    if not np.all(np.isfinite(shocks)):
        raise ValueError("shocks must be finite numbers")
    if variance is None:
        state = model.init_state(params, None)
    else:
        variance = float(variance)
        if not (np.isfinite(variance) and variance > 0.0):
            raise ValueError(f"variance must be a positive finite number, got {variance!r}")
        state = model.state_from_variance(params, jnp.asarray(variance))
    law = model.emission(params, state)
    returns = law.mean + jnp.asarray(shocks)
    outside = ~np.isfinite(np.asarray(law.log_prob(returns)))
    if np.any(outside):
        raise ValueError(f"shocks {shocks[outside][:5].tolist()} lie outside the support of the returns of "
                         f"{model.describe()} at these parameters; choose shocks inside it")
    return np.asarray(model.variance(model.update(params, state, returns)), dtype=np.float64)
