"""The registry: which estimation methods exist for which model family, and what implements each.

One table, written out below: a row per (family, method). A *likelihood* row names the pointwise
log-likelihood ``fn(model, params, y, **options) -> (T,) array`` (a pure JAX function of ``params``) that
[`bayesvol.fit`][bayesvol.fit] maximises and [`bayesvol.log_likelihood`][bayesvol.log_likelihood] evaluates, with how
its derivatives are taken and an optional check run at the estimate (e.g. the Monte Carlo spread of a simulated
likelihood). A row may also name a *fitter*, an estimation driver that replaces the single optimisation
(EIS maximum likelihood in rounds, the two-step DCC estimator); a fitter receives the plain optimiser as
its ``fit`` argument. Sampler rows (``"nuts"``, ``"svi"``, ``"pmmh"``) say which posterior samplers a
family supports, with an optional ``nuts_setup(model, y, dense_mass) -> dict`` of NUTS options that a
filter computes (a start value and an initial mass matrix).

Nothing registers itself on import: adding a family or a method is adding rows here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import bayesvol.inference.dfsv_nuts as dfsv_nuts
import bayesvol.inference.eis_rounds as eis_rounds
import bayesvol.inference.two_step as two_step
from bayesvol.filters import dfsv_methods, sv_methods, wishart_methods
from bayesvol.models import dcc, egarch, garch, iggarch
from bayesvol.models.dcc import DCC, DCCCorrelationStep
from bayesvol.models.dfsv import DFSV
from bayesvol.models.egarch import EGARCH
from bayesvol.models.garch import GARCH
from bayesvol.models.iggarch import IGGARCH
from bayesvol.models.sv import SV
from bayesvol.models.wishart_sv import WishartSV

__all__ = ["Method", "TABLE", "available", "lookup", "nuts_setup"]

SAMPLERS = ("nuts", "svi", "pmmh")


@dataclass(frozen=True)
class Method:
    """One row of the registry.

    Attributes
    ----------
    loglik : callable or None
        ``fn(model, params, y, **options)`` -> pointwise log-likelihood, shape ``(T,)``.
    differentiable : bool
        ``False`` makes [`bayesvol.fit`][bayesvol.fit] use Nelder-Mead and finite-difference derivatives.
    hessian : {"autodiff", "differences"}
        Hessian and scores by nested autodiff, or by differences of the compiled gradient (for deep
        simulated likelihoods whose second-order programs are slow to compile).
    diagnostics : callable or None
        ``fn(model, params, y, **options) -> dict`` run at the estimate; entries go to the result.
    fitter : callable or None
        ``fn(model, y, *, fit, **fit_arguments) -> result`` replacing the single optimisation.
    nuts_setup : callable or None
        ``fn(model, y, dense_mass) -> dict`` of extra NUTS options (sampler rows only).
    density_of_data : bool
        ``True`` when ``loglik`` is a log density of ``y`` (it then shifts by ``-T log s`` when ``y`` is
        multiplied by ``s``); ``False`` for a quasi-likelihood of a transform of the data that rescaling
        only shifts (QML of ``log y^2``), whose value does not change with the units.
    length_buckets : bool
        ``True`` when, for a model with ``supports_missing``, the terms of ``loglik`` at the first ``T`` steps
        are unchanged by missing steps (NaN) appended to ``y`` and those steps add zero: a causal filter with no
        random numbers. [`bayesvol.fit`][bayesvol.fit] then pads the data to a length bucket, so one compiled program
        serves every series length in the bucket (see `bayesvol.inference._problem.bucket_length`).
    rough_surface : bool
        ``True`` for a simulated likelihood whose surface, for fixed random numbers, is continuous but rough at
        the scale of its Monte Carlo noise (a particle filter's resampling): its Hessian measures that roughness,
        not the curvature of the likelihood, so standard errors from it are unreliable and
        [`bayesvol.fit`][bayesvol.fit] says so in ``MLEResult.warnings``.
    se_method : str or None
        The method of the same family whose log-likelihood (a smooth estimate of the same likelihood) gives, by
        its Hessian and scores at this method's estimate, the standard errors of this method's fit: the default
        of [`bayesvol.fit`][bayesvol.fit]'s ``se_method`` option; ``None``: this method's own.
    """

    loglik: Callable | None = None
    differentiable: bool = True
    hessian: str = "autodiff"
    diagnostics: Callable | None = None
    fitter: Callable | None = None
    nuts_setup: Callable | None = None
    density_of_data: bool = True
    length_buckets: bool = False
    rough_surface: bool = False
    se_method: str | None = None


_EXACT_SAMPLERS = {"nuts": Method(), "svi": Method()}
_LATENT_SAMPLERS = {"nuts": Method(), "svi": Method(), "pmmh": Method()}

TABLE: dict[tuple[type, str], Method] = {
    # --- observation-driven families: the exact one-step-ahead likelihood --------------------------------
    (GARCH, "exact"): Method(garch.exact_loglik, length_buckets=True),
    (EGARCH, "exact"): Method(egarch.exact_loglik, length_buckets=True),
    (IGGARCH, "exact"): Method(iggarch.exact_loglik, length_buckets=True),
    (DCC, "exact"): Method(dcc.exact_loglik, fitter=two_step.fit_joint),
    (DCC, "two_step"): Method(fitter=two_step.fit_two_step),
    (DCCCorrelationStep, "exact"): Method(dcc.correlation_step_loglik),
    **{(family, name): row for family in (GARCH, EGARCH, IGGARCH, DCC) for name, row in _EXACT_SAMPLERS.items()},
    # --- univariate SV: simulated and approximate likelihoods ---------------------------------------
    (SV, "pf"): Method(sv_methods.sv_particle_filter, hessian="differences", diagnostics=sv_methods.pf_diagnostics,
                       rough_surface=True, se_method="eis"),
    (SV, "eis"): Method(sv_methods.sv_eis, hessian="differences", diagnostics=sv_methods.eis_diagnostics),
    (SV, "bellman"): Method(sv_methods.sv_bellman, hessian="differences"),
    (SV, "qml"): Method(sv_methods.sv_qml, hessian="differences", diagnostics=sv_methods.qml_diagnostics,
                        density_of_data=False),
    **{(SV, name): row for name, row in _LATENT_SAMPLERS.items()},
    # --- dynamic factor SV -------------------------------------------------------------------------
    (DFSV, "bellman"): Method(dfsv_methods.bellman_loglik, hessian="differences"),
    (DFSV, "pf"): Method(dfsv_methods.particle_loglik, hessian="differences",
                         diagnostics=dfsv_methods.particle_diagnostics, rough_surface=True),
    (DFSV, "nuts"): Method(nuts_setup=dfsv_nuts.nuts_options),
    (DFSV, "svi"): Method(),
    # --- Wishart SV --------------------------------------------------------------------------------
    (WishartSV, "eis"): Method(wishart_methods.eis_loglik, hessian="differences",
                               diagnostics=wishart_methods.eis_diagnostics, fitter=eis_rounds.fit_eis_rounds),
    (WishartSV, "pf"): Method(wishart_methods.pf_loglik, differentiable=False, rough_surface=True),
    (WishartSV, "nuts"): Method(),
    (WishartSV, "svi"): Method(),
}


def _row(model, method: str) -> Method | None:
    for cls in type(model).__mro__:
        if (cls, method) in TABLE:
            return TABLE[(cls, method)]
    return None


def available(model, kind: str = "likelihood") -> list[str]:
    """Methods registered for ``model``: likelihood/fitter methods, or the ``"samplers"``."""
    names = {m for (cls, m) in TABLE if isinstance(model, cls)}
    if kind == "samplers":
        return sorted(names & set(SAMPLERS))
    return sorted(names - set(SAMPLERS))


def lookup(model, method: str) -> Method:
    """The registry row of ``method`` for ``model``'s family (or a parent class); a clear error otherwise."""
    row = _row(model, method)
    if row is None:
        kind = "samplers" if method in SAMPLERS else "likelihood"
        known = available(model, kind)
        raise ValueError(f"method {method!r} is not available for {model!r}; available: {', '.join(known) or 'none'}")
    return row


def nuts_setup(model, y, dense_mass: bool) -> dict:
    """Extra NUTS options of the model's family (empty unless its ``"nuts"`` row names a set-up)."""
    row = _row(model, "nuts")
    return row.nuts_setup(model, y, dense_mass) if row is not None and row.nuts_setup is not None else {}
