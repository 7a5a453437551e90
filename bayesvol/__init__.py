"""bayesvol: Bayesian and frequentist estimation of volatility models with NumPyro and JAX."""

from bayesvol import (
    _config,  # noqa: F401  (float64 and CPU devices before anything uses JAX)
    compare,
    datasets,
    distributions,
    filters,
    models,
    plots,
)
from bayesvol._version import __version__
from bayesvol.forecast import CovarianceForecast, Forecast, forecast
from bayesvol.inference import ConvergenceWarning, MLEResult, fit, log_likelihood, log_likelihood_fn, sample
from bayesvol.simulation import simulate

__all__ = [
    "ConvergenceWarning",
    "CovarianceForecast",
    "Forecast",
    "MLEResult",
    "__version__",
    "compare",
    "datasets",
    "distributions",
    "filters",
    "fit",
    "forecast",
    "log_likelihood",
    "log_likelihood_fn",
    "models",
    "plots",
    "sample",
    "simulate",
]
