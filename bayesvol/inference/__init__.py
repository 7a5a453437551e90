"""Estimators: NumPyro samplers (NUTS, SVI) returning ArviZ InferenceData, and maximum likelihood."""

from bayesvol.inference.diagnostics import ConvergenceWarning, check_convergence
from bayesvol.inference.mcmc import sample
from bayesvol.inference.mle import MLEResult, fit, log_likelihood, register_loglik

__all__ = ["ConvergenceWarning", "MLEResult", "check_convergence", "fit", "log_likelihood", "register_loglik",
           "sample"]
