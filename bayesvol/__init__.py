"""bayesvol: Bayesian and frequentist estimation of volatility models with NumPyro and JAX.

Importing the package sets up JAX (float64, one host device per core, the persistent compilation cache: see
[`set_compilation_cache`][bayesvol.set_compilation_cache]) and nothing else: the estimators, models, plots and
comparison tools are imported on first use (``bayesvol.fit``, ``bayesvol.plots``, ...), so that ``import bayesvol``
costs little beyond importing JAX.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bayesvol import _config  # noqa: F401  (float64, CPU devices and the compilation cache before JAX is used)
from bayesvol._config import set_compilation_cache
from bayesvol._validation import ConvergenceWarning, StationarityWarning
from bayesvol._version import __version__

if TYPE_CHECKING:  # the same names for type checkers and the API docs, which do not run __getattr__
    from bayesvol import backtest, compare, datasets, distributions, filters, models, plots
    from bayesvol.forecasting import CovarianceForecast, Forecast, forecast
    from bayesvol.inference.likelihood import log_likelihood, log_likelihood_fn
    from bayesvol.inference.mcmc import sample
    from bayesvol.inference.mle import fit
    from bayesvol.inference.residuals import news_impact, residual_diagnostics
    from bayesvol.inference.results import MLEResult, conditional_volatility
    from bayesvol.rolling import RollingForecast, rolling_forecast
    from bayesvol.simulation import simulate

# Public name -> (module, attribute or None for the module itself), resolved on first access.
_LAZY = {
    "backtest": ("bayesvol.backtest", None),
    "compare": ("bayesvol.compare", None),
    "datasets": ("bayesvol.datasets", None),
    "distributions": ("bayesvol.distributions", None),
    "filters": ("bayesvol.filters", None),
    "models": ("bayesvol.models", None),
    "plots": ("bayesvol.plots", None),
    "CovarianceForecast": ("bayesvol.forecasting", "CovarianceForecast"),
    "Forecast": ("bayesvol.forecasting", "Forecast"),
    "forecast": ("bayesvol.forecasting", "forecast"),
    "MLEResult": ("bayesvol.inference.results", "MLEResult"),
    "conditional_volatility": ("bayesvol.inference.results", "conditional_volatility"),
    "news_impact": ("bayesvol.inference.residuals", "news_impact"),
    "residual_diagnostics": ("bayesvol.inference.residuals", "residual_diagnostics"),
    "fit": ("bayesvol.inference.mle", "fit"),
    "log_likelihood": ("bayesvol.inference.likelihood", "log_likelihood"),
    "log_likelihood_fn": ("bayesvol.inference.likelihood", "log_likelihood_fn"),
    "sample": ("bayesvol.inference.mcmc", "sample"),
    "simulate": ("bayesvol.simulation", "simulate"),
    "RollingForecast": ("bayesvol.rolling", "RollingForecast"),
    "rolling_forecast": ("bayesvol.rolling", "rolling_forecast"),
}

__all__ = [
    "ConvergenceWarning",
    "StationarityWarning",
    "CovarianceForecast",
    "Forecast",
    "MLEResult",
    "RollingForecast",
    "__version__",
    "backtest",
    "compare",
    "conditional_volatility",
    "datasets",
    "distributions",
    "filters",
    "fit",
    "forecast",
    "log_likelihood",
    "log_likelihood_fn",
    "models",
    "news_impact",
    "plots",
    "residual_diagnostics",
    "rolling_forecast",
    "sample",
    "set_compilation_cache",
    "simulate",
]


def __getattr__(name: str):
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'bayesvol' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
