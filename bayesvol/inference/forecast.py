"""Forecasts: variances, returns and value-at-risk (GARCH family, EGARCH, IG-GARCH) and covariances (DCC, Wishart SV).

The engine of [`bayesvol.forecast`][bayesvol.forecasting.forecast], in the inference layer so that
[`bayesvol.MLEResult.forecast`][bayesvol.MLEResult.forecast] can call it; it takes parameters or a posterior, and
[`bayesvol.forecasting`][bayesvol.forecasting] adds the maximum-likelihood result as a source. From fixed parameters (a
dict or ``<Model>Params``) the variance forecast is analytic for GARCH/GJR and simulated for IG-GARCH; from a posterior
(an ArviZ ``xarray.DataTree``) every draw is filtered through the data and simulated forward, so the predictive
distribution of returns, and the value-at-risk read from it, integrate over parameter uncertainty. For the multivariate
models the same [`forecast`][bayesvol.forecasting.forecast] gives the one-step-ahead covariance matrix
([`CovarianceForecast`][bayesvol.CovarianceForecast]), from parameters (the filter's last state) or from a posterior
(averaged over the draws).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import bayesvol.filters.wishart_methods as wishart_methods
from bayesvol.models import _base, _observation
from bayesvol.models._protocol import VarianceForecastModel
from bayesvol.models.dcc import DCC
from bayesvol.models.wishart_sv import WishartSV

__all__ = ["CovarianceForecast", "Forecast", "forecast"]


@dataclass
class CovarianceForecast:
    r"""One-step-ahead covariance forecast $E[y_{T+1} y_{T+1}' \mid y_{1:T}]$ of a multivariate model.

    Attributes
    ----------
    covariance : pandas.DataFrame
        The forecast covariance matrix, rows and columns labelled by asset.
    method : str
        How the last state was obtained: ``"filter"`` (DCC's exact recursion), ``"eis"`` or ``"pf"`` (Wishart
        SV's filtering law), or ``"posterior"`` (averaged over posterior draws).
    source : str
        ``"parameters"`` or ``"posterior"``.
    """

    covariance: pd.DataFrame
    method: str
    source: str

    @property
    def volatility(self) -> pd.Series:
        """Forecast conditional standard deviation of each asset."""
        return pd.Series(np.sqrt(np.diag(self.covariance.to_numpy())), index=self.covariance.index, name="volatility")

    @property
    def correlation(self) -> pd.DataFrame:
        """Forecast conditional correlation matrix."""
        vol = self.volatility.to_numpy()
        return self.covariance / np.outer(vol, vol)


def _covariance_forecast(model, source, y, horizon, method, options) -> CovarianceForecast:
    if horizon != 1:
        raise ValueError(f"covariance forecasts of {model.describe()} are one step ahead; got horizon={horizon}")
    panel = model.validate_data(y)
    columns = getattr(panel, "columns", None)
    labels = list(columns) if columns is not None else list(range(np.shape(panel.values)[1]))
    if getattr(source, "posterior", None) is not None:
        if method is not None or options:
            raise ValueError("a forecast from a posterior takes no method or filter options")
        cov, method, kind = model.posterior_forecast_covariance(source, y), "posterior", "posterior"
    else:
        params = source
        if isinstance(model, DCC):
            if method not in (None, "filter"):
                raise ValueError(f"DCC forecasts come from its exact recursion (method='filter'), got {method!r}")
            cov, method = model.forecast_covariance(params, y, **options), "filter"
        else:
            method = method or "eis"
            cov = wishart_methods.forecast_covariance(model, params, y, method=method, **options)
        kind = "parameters"
    cov = np.asarray(cov, dtype=np.float64)
    if not np.all(np.isfinite(cov)):
        raise ValueError("the covariance forecast is not finite; check the parameters (Wishart SV needs nu > k + 1)")
    return CovarianceForecast(covariance=pd.DataFrame(cov, index=labels, columns=labels), method=method, source=kind)


@dataclass
class Forecast:
    """Forecasts for horizons ``1..H`` after the last observation.

    Attributes
    ----------
    variance : pandas.DataFrame
        Index ``horizon`` (1..H). Column ``mean``: the expected conditional variance
        $E[\\sigma^2_{T+h} \\mid y_{1:T}]$ (averaged over the posterior when forecasting from draws, with
        its ``2.5%`` and ``97.5%`` posterior quantiles as further columns).
    mean : pandas.Series
        Expected return per horizon.
    value_at_risk : pandas.DataFrame or None
        Index ``horizon``, one column per level $\\alpha$: $\\mathrm{VaR}_\\alpha =
        -q_\\alpha(R_{T+h})$, the loss exceeded with probability $\\alpha$, read from the predictive draws
        (a positive number for the usual small $\\alpha$). ``None`` when no levels were asked for.
    returns : numpy.ndarray or None
        Draws from the predictive distribution of $R_{T+1..T+H}$, shape ``(num_draws, H)``.
    method : str
        ``"analytic"`` or ``"simulation"`` for the variance forecast.
    source : str
        ``"parameters"`` or ``"posterior"``.
    """

    variance: pd.DataFrame
    mean: pd.Series
    value_at_risk: pd.DataFrame | None
    returns: np.ndarray | None
    method: str
    source: str

    @property
    def volatility(self) -> pd.Series:
        """Square root of the expected variance per horizon."""
        return np.sqrt(self.variance["mean"]).rename("volatility")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _draws_from(model, source):
    """Stacked parameter values (S draws per name) and a label, from params or a posterior DataTree."""
    posterior = getattr(source, "posterior", None)  # an ArviZ DataTree (or anything with a posterior group)
    if posterior is not None:
        missing = [n for n in model.param_names if n not in posterior]
        if missing:
            raise ValueError(f"the posterior lacks {missing}; was it sampled from {model.describe()}?")
        stacked = {n: np.asarray(posterior[n].values, dtype=np.float64).reshape(-1) for n in model.param_names}
        _check_draws(model, stacked)
        return stacked, "posterior"
    params = _base.as_params(model, source)
    model.check_parameters(params)
    return {n: np.atleast_1d(np.asarray(getattr(params, n), dtype=np.float64)) for n in model.param_names}, "parameters"


def _check_draws(model, stacked: dict) -> None:
    """Refuse posterior draws outside the model's parameter space (an explosive persistence of one or more):
    their variance forecasts grow without bound, so the forecast would be meaningless rather than wide."""
    inside = np.asarray(jax.vmap(lambda v: model.in_parameter_space(model.params_type(**v)))(
        {n: jnp.asarray(v) for n, v in stacked.items()}))
    if inside.all():
        return
    first = int(np.flatnonzero(~inside)[0])
    try:
        model.check_parameters(model.params_type(**{n: float(v[first]) for n, v in stacked.items()}))
        cause = "they leave the model's parameter space"
    except ValueError as err:
        cause = f"e.g. draw {first}: {err}"
    raise ValueError(f"{int((~inside).sum())} of {inside.size} posterior draws of {model.describe()} are explosive "
                     f"({cause}); their variance forecasts grow without bound. The sampler has not found the "
                     "posterior (check divergences and R-hat) or the priors allow such values: sample again with "
                     "stationary priors or more warm-up")


@partial(jax.jit, static_argnums=(0, 3, 4, 5))
def _forecast_draws(model, stacked, y, horizon: int, paths: int, analytic: bool, key):
    """Per draw: filter ``y``, then the expected variances, expected returns and ``paths`` simulated paths."""

    def one(values, key_i):
        params = model.params_type(**values)
        _, last = _observation.filter_states(model, params, y)
        if paths:
            keys = jax.random.split(key_i, paths)
            returns, states = jax.vmap(lambda k: _observation.simulate_path(model, params, horizon, k, last))(keys)
        else:
            returns, states = jnp.zeros((0, horizon)), None
        if analytic:
            expected = model.expected_variance(params, last, horizon)
        else:
            expected = jnp.mean(model.variance(states), axis=0)
        mean = model.emission(params, model.state_from_variance(params, expected)).mean
        return expected, mean, returns

    keys = jax.random.split(key, next(iter(stacked.values())).shape[0])
    return jax.vmap(one)(stacked, keys)


def forecast(model, params_or_idata, y, horizon: int = 1, *, levels=(0.01, 0.05), method: str | None = None,
             num_paths: int = 10_000, max_draws: int = 1000, seed: int = 0, **options) -> Forecast | CovarianceForecast:
    """[`bayesvol.forecast`][bayesvol.forecasting.forecast] from fixed parameters (a dict or ``<Model>Params``) or a
posterior DataTree.

    The arguments and the result are those of [`bayesvol.forecast`][bayesvol.forecasting.forecast], which documents
    them; a maximum-likelihood result is passed here as its ``params``.

    Examples
    --------
    >>> import bayesvol
    >>> from bayesvol.inference.forecast import forecast
    >>> y = bayesvol.datasets.load("gbpusd")
    >>> model = bayesvol.models.GARCH()
    >>> params = {"mu": 0.0, "omega": 0.01, "alpha": 0.05, "beta": 0.9}
    >>> forecast(model, params, y, horizon=3, levels=None).variance.shape
    (3, 1)
    """
    horizon = _check_positive_int("horizon", horizon)
    key = _base.as_key(seed, "seed")
    if isinstance(model, (DCC, WishartSV)):
        return _covariance_forecast(model, params_or_idata, y, horizon, method, options)
    if not isinstance(model, VarianceForecastModel):
        raise ValueError(f"forecast needs an observation-driven model (GARCH, EGARCH, IGGARCH) or a covariance "
                         f"model (DCC, WishartSV); got {model!r}")
    if options:
        raise TypeError(f"forecast of {model.describe()} takes no options {sorted(options)}")
    num_paths = _check_positive_int("num_paths", num_paths)
    max_draws = _check_positive_int("max_draws", max_draws)
    if method is None:
        method = model.default_forecast_method
    if method not in ("analytic", "simulation"):
        raise ValueError(f"method must be 'analytic' or 'simulation', got {method!r}")
    levels = None if levels is None else [float(v) for v in np.atleast_1d(levels)]
    if levels is not None and not all(0.0 < v < 1.0 for v in levels):
        raise ValueError(f"levels must lie strictly between 0 and 1, got {levels}")
    series = model.validate_data(y)
    stacked, source = _draws_from(model, params_or_idata)
    num_draws = next(iter(stacked.values())).shape[0]
    if num_draws > max_draws:
        keep = np.linspace(0, num_draws - 1, max_draws).round().astype(int)
        stacked = {n: v[keep] for n, v in stacked.items()}
        num_draws = max_draws
    simulate = levels is not None or method == "simulation"
    paths = max(1, num_paths // num_draws) if simulate else 0
    expected, mean, returns = _forecast_draws(model, {n: jnp.asarray(v) for n, v in stacked.items()},
                                              jnp.asarray(series.values), horizon, paths, method == "analytic",
                                              key)
    expected, mean = np.asarray(expected), np.asarray(mean)
    if not np.all(np.isfinite(expected)):
        raise ValueError("the variance forecast is not finite; the parameters put the data outside the model's "
                         "support (see the model's log_likelihood warning)")
    index = pd.RangeIndex(1, horizon + 1, name="horizon")
    variance = pd.DataFrame({"mean": expected.mean(axis=0)}, index=index)
    if source == "posterior":
        variance["2.5%"] = np.quantile(expected, 0.025, axis=0)
        variance["97.5%"] = np.quantile(expected, 0.975, axis=0)
    draws = np.asarray(returns).reshape(-1, horizon) if simulate else None
    value_at_risk = None
    if levels is not None:
        value_at_risk = pd.DataFrame({level: -np.quantile(draws, level, axis=0) for level in levels}, index=index)
        value_at_risk.columns.name = "level"
    return Forecast(variance=variance, mean=pd.Series(mean.mean(axis=0), index=index, name="mean"),
                    value_at_risk=value_at_risk, returns=draws, method=method, source=source)
