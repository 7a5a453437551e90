"""bayesvol: Bayesian and frequentist estimation of volatility models with NumPyro and JAX."""

__version__ = "0.1.0"

from bayesvol import _config  # noqa: F401  (float64 and CPU devices before anything uses JAX)
from bayesvol import datasets, distributions, models
from bayesvol.inference import ConvergenceWarning, sample
from bayesvol.simulation import simulate

__all__ = ["ConvergenceWarning", "datasets", "distributions", "models", "sample", "simulate", "__version__"]
