"""Registrations of the SV likelihood methods until the registry table in ``bayesvol.inference`` lists them."""

from bayesvol.filters import sv_methods
from bayesvol.inference.mle import register_loglik
from bayesvol.models.sv import SV

register_loglik(SV, "pf", differentiable=True, diagnostics=sv_methods.pf_diagnostics,
                hessian="differences")(sv_methods.sv_particle_filter)
register_loglik(SV, "eis", differentiable=True, diagnostics=sv_methods.eis_diagnostics,
                hessian="differences")(sv_methods.sv_eis)
register_loglik(SV, "bellman", differentiable=True, hessian="differences")(sv_methods.sv_bellman)
register_loglik(SV, "qml", differentiable=True, diagnostics=sv_methods.qml_diagnostics,
                hessian="differences")(sv_methods.sv_qml)
