"""Temporary: likelihood and fitter rows of the observation-driven families until the registry table exists."""

from bayesvol.inference import two_step
from bayesvol.inference.mle import register_fitter, register_loglik
from bayesvol.models import dcc, garch, iggarch

register_loglik(garch.GARCH, "exact")(garch.exact_loglik)
register_loglik(iggarch.IGGARCH, "exact")(iggarch.exact_loglik)
register_loglik(dcc.DCC, "exact")(dcc.exact_loglik)
register_loglik(dcc.DCCCorrelationStep, "exact")(dcc.correlation_step_loglik)
register_fitter(dcc.DCC, "exact")(two_step.fit_joint)
register_fitter(dcc.DCC, "two_step")(two_step.fit_two_step)
