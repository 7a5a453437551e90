"""Estimators: NumPyro samplers (NUTS, SVI, PMMH) returning ArviZ ``xarray.DataTree``, and maximum likelihood.

Which estimator exists for which model family is the table in `bayesvol.inference.registry`.
"""

from bayesvol.inference.diagnostics import ConvergenceWarning, check_convergence
from bayesvol.inference.likelihood import log_likelihood, log_likelihood_fn
from bayesvol.inference.mcmc import sample
from bayesvol.inference.mle import MLEResult, fit
from bayesvol.inference.results import BatchMLEResult

__all__ = ["BatchMLEResult", "ConvergenceWarning", "MLEResult", "check_convergence", "fit", "log_likelihood",
           "log_likelihood_fn", "sample"]
