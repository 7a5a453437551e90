"""Forecasts: variances, returns and value-at-risk (GARCH family, EGARCH, IG-GARCH) and covariances (DCC, Wishart SV).

From fixed parameters (a dict, ``<Model>Params`` or an [`MLEResult`][bayesvol.MLEResult]) the variance forecast
is analytic for GARCH/GJR and simulated for IG-GARCH; from a posterior (an ArviZ ``xarray.DataTree``) every
draw is filtered through the data and simulated forward, so the predictive distribution of returns, and the
value-at-risk read from it, integrate over parameter uncertainty. For the multivariate models the same
[`forecast`][bayesvol.forecasting.forecast] gives the one-step-ahead covariance matrix
([`CovarianceForecast`][bayesvol.CovarianceForecast]), from parameters (the filter's last state) or from a posterior
(averaged over the draws).

The computation is `bayesvol.inference.forecast` (below the result types, so that
[`bayesvol.MLEResult.forecast`][bayesvol.MLEResult.forecast] uses the same code); this module adds the
maximum-likelihood result as a source.
"""

from __future__ import annotations

import bayesvol.inference.forecast as _engine
from bayesvol.inference.forecast import CovarianceForecast, Forecast
from bayesvol.inference.results import MLEResult

__all__ = ["CovarianceForecast", "Forecast", "forecast"]


def forecast(model, params_or_idata, y, horizon: int = 1, *, levels=(0.01, 0.05), method: str | None = None,
             num_paths: int = 10_000, max_draws: int = 1000, seed: int = 0, **options) -> Forecast | CovarianceForecast:
    """Forecast variances, returns and value-at-risk ``1..horizon`` steps after the data, or a covariance matrix.

    Parameters
    ----------
    model : bayesvol model
        A univariate observation-driven model ([`GARCH`][bayesvol.models.GARCH],
        [`EGARCH`][bayesvol.models.EGARCH], [`IGGARCH`][bayesvol.models.IGGARCH]), or a multivariate one
        ([`DCC`][bayesvol.models.DCC], [`WishartSV`][bayesvol.models.WishartSV]), for which the result is the
        one-step-ahead covariance ([`CovarianceForecast`][bayesvol.CovarianceForecast]; ``method`` ``"eis"`` or ``"pf"``
        for Wishart SV, whose filter options, e.g. ``num_draws``, pass through ``**options``).
    params_or_idata : dict, <Model>Params, MLEResult or xarray.DataTree
        Fixed parameters (e.g. maximum-likelihood estimates) or a posterior sample from
        [`bayesvol.sample`][bayesvol.sample].
    y : array_like or pandas.Series
        The returns the model was estimated on; the forecast starts after the last one.
    horizon : int
        Number of steps ahead.
    levels : sequence of float or None
        Tail probabilities of the value-at-risk (e.g. 0.01 and 0.05); ``None`` skips return simulation when
        the variance forecast is analytic.
    method : str, optional
        Variance forecast, ``"analytic"`` or ``"simulation"``; by default analytic for GARCH/GJR and simulation
        for IG-GARCH (whose closed form is used in the tests to check the simulation).
    num_paths : int
        Simulated paths in all (split evenly over posterior draws).
    max_draws : int
        Posterior draws used at most (evenly thinned).
    seed : int, None or jax.random key
        Seed of the JAX random number generator (``None``: a fresh random seed).

    Returns
    -------
    Forecast or CovarianceForecast

    Examples
    --------
    >>> import bayesvol
    >>> y = bayesvol.datasets.load("gbpusd")
    >>> model = bayesvol.models.GARCH()
    >>> result = bayesvol.fit(model, y)
    >>> fc = bayesvol.forecast(model, result, y, horizon=5, levels=[0.01])
    >>> fc.variance.shape
    (5, 1)
    >>> bool((fc.value_at_risk[0.01] > 0).all())
    True
    """
    source = params_or_idata.params if isinstance(params_or_idata, MLEResult) else params_or_idata
    return _engine.forecast(model, source, y, horizon, levels=levels, method=method, num_paths=num_paths,
                            max_draws=max_draws, seed=seed, **options)
