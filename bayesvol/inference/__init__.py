"""Estimators: NumPyro samplers (NUTS, SVI) returning ArviZ InferenceData."""

from bayesvol.inference.diagnostics import ConvergenceWarning, check_convergence
from bayesvol.inference.mcmc import sample

__all__ = ["ConvergenceWarning", "check_convergence", "sample"]
