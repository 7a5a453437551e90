"""Temporary: the Wishart SV likelihood methods and fitter in the current registries, until the registry table."""

from bayesvol.filters.wishart_methods import eis_diagnostics, eis_loglik, pf_loglik
from bayesvol.inference.eis_rounds import fit_eis_rounds
from bayesvol.inference.mle import register_fitter, register_loglik
from bayesvol.models.wishart_sv import WishartSV

register_loglik(WishartSV, "eis", diagnostics=eis_diagnostics, hessian="differences")(eis_loglik)
register_loglik(WishartSV, "pf", differentiable=False)(pf_loglik)
register_fitter(WishartSV, "eis")(fit_eis_rounds)
