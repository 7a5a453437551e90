"""Temporary: likelihood and fitter rows of the observation-driven families until the registry table exists."""

from bayesvol.inference.mle import register_fitter, register_loglik
from bayesvol.models import garch, iggarch

register_loglik(garch.GARCH, "exact")(garch.exact_loglik)
register_loglik(iggarch.IGGARCH, "exact")(iggarch.exact_loglik)
