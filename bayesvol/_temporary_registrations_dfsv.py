"""TEMPORARY: registrations of the DFSV estimators until the registry table in ``bayesvol.inference`` lists them.

To be deleted when the registry rows for DFSV are added (``bellman``: ``filters.dfsv_methods.bellman_loglik``,
hessian by differences; ``pf``: ``filters.dfsv_methods.particle_loglik``, hessian by differences, diagnostics
``filters.dfsv_methods.particle_diagnostics``; NUTS options: ``inference.dfsv_nuts.nuts_options``).
"""

import bayesvol.filters.dfsv_methods as dfsv_methods
import bayesvol.inference.dfsv_nuts as dfsv_nuts
from bayesvol.inference.mle import register_loglik
from bayesvol.models.dfsv import DFSV

register_loglik(DFSV, "bellman", hessian="differences")(dfsv_methods.bellman_loglik)
register_loglik(DFSV, "pf", diagnostics=dfsv_methods.particle_diagnostics, hessian="differences")(
    dfsv_methods.particle_loglik)

# TEMPORARY: bayesvol.sample asks the model for nuts_options; the registry lookup replaces this.
DFSV.nuts_options = lambda self, y, dense_mass=True: dfsv_nuts.nuts_options(self, y, dense_mass)
