r"""Engle's (2002) two-step estimator of DCC models, and the joint maximum likelihood started from it.

``fit_two_step`` is the fitter of ``bayesvol.fit(DCC(), y, method="two_step")``; ``fit_joint`` that of
``bayesvol.fit(DCC(), y)`` (the exact joint likelihood, optimised from the two-step estimate).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayesvol.inference.results import MLEResult
from bayesvol.models._base import as_params
from bayesvol.models.dcc import DCC, DCCCorrelationStep, DCCParams, target

__all__ = ["DCCTwoStepResult", "fit_joint", "fit_two_step"]


@dataclass
class DCCTwoStepResult:
    """Engle's two-step DCC estimate.

    Attributes
    ----------
    model : DCC
    params : dict
        Estimates by DCC name (per-asset vectors for the GARCH parameters).
    se : dict
        Standard errors from each step's inverse observed information (those of the second step ignore
        the estimation error of the first; use the joint ``bayesvol.fit(DCC(), y)`` for joint ones).
    garch : BatchMLEResult
        First step: one GARCH fit per asset.
    correlation : MLEResult
        Second step: ``dcc_a``, ``dcc_b`` (and ``nu``).
    loglik : float
        Joint log-likelihood at the two-step estimate.
    q_bar : numpy.ndarray
        Correlation target from the first-step standardised residuals.
    """

    model: DCC
    params: dict
    se: dict
    garch: object
    correlation: object
    loglik: float
    q_bar: np.ndarray
    columns: list | None = None

    def to_frame(self) -> pd.DataFrame:
        """Estimates and standard errors, one row per scalar parameter."""
        rows = []
        for name in self.model.param_names:
            values, ses = np.atleast_1d(self.params[name]), np.atleast_1d(self.se[name])
            if np.ndim(self.params[name]) == 0:
                rows.append((name, float(values[0]), float(ses[0])))
            else:
                labels = self.columns or list(range(len(values)))
                rows.extend((f"{name}[{lab}]", float(v), float(s)) for lab, v, s in zip(labels, values, ses,
                                                                                       strict=True))
        return pd.DataFrame(rows, columns=["param", "coef", "std err"]).set_index("param")

    def summary(self) -> str:
        """A readable table of the two-step estimates."""
        return "\n".join([f"{self.model.describe()} — two-step maximum likelihood",
                          f"Joint log-likelihood: {self.loglik:.4f}", self.to_frame().to_string(
                              float_format=lambda v: f"{v: .5f}")])


def fit_two_step(model: DCC, y, *, fit, **fit_options) -> DCCTwoStepResult:
    r"""Engle's (2002) two-step estimator of a DCC model.

    Step 1 fits each asset's GARCH(1,1) by maximum likelihood ([`bayesvol.fit`][bayesvol.fit] on the panel, one
    fit per column); step 2 maximises the log density of the standardised residuals
    $u_t = D_t^{-1}(y_t - \mu)$ under the DCC correlations over $a, b$ (and $\nu$ for
    the t law), with $\bar Q$ their mean outer product (`DCCCorrelationStep`).
    For normal errors the second step is Engle's correlation log-likelihood; the joint log-likelihood is the
    sum of the two steps' parts. ``bayesvol.fit(DCC(), y, method="two_step")`` runs this function.

    Parameters
    ----------
    model : DCC
    y : (T, k) array or DataFrame
    fit : callable
        The single-series optimiser, [`bayesvol.fit`][bayesvol.fit] (the registry passes it).
    **fit_options
        Passed to both [`bayesvol.fit`][bayesvol.fit] calls (``maxiter``, ``gtol``, ``warn``). Start values are not
        taken: each step starts from its own model's.
    """
    if fit_options.pop("start", None) is not None:
        raise ValueError("the two-step DCC estimator takes no start values (each step uses its model's own)")
    fit_options.pop("num_starts", None)
    panel = model.validate_data(y)
    values = panel.values
    garch_fit = fit(model.garch_model(), values, **fit_options)
    garch_names = ("mu",) * (model.mean == "constant") + ("omega", "alpha", "beta")
    first = {n: garch_fit.params[n].to_numpy() for n in garch_names}
    first_se = {n: garch_fit.se[n].to_numpy() for n in garch_names}
    stage = DCCParams(**first, nu=8.0 if model.dist == "t" else None, dcc_a=0.0, dcc_b=0.0)
    u, _ = model.standardised_residuals(stage, jnp.asarray(values))
    u = np.asarray(u)
    corr_fit = fit(DCCCorrelationStep(dist=model.dist), u, **fit_options)
    params = dict(first, **corr_fit.params)
    se = dict(first_se, **corr_fit.se)
    full = as_params(model, params)
    loglik = float(jnp.sum(model.pointwise_loglik(full, jnp.asarray(values))))
    return DCCTwoStepResult(model=model, params=params, se=se, garch=garch_fit, correlation=corr_fit,
                            loglik=loglik, q_bar=np.asarray(target(u)), columns=panel.columns)


def fit_joint(model: DCC, y, *, fit, start=None, **fit_options) -> MLEResult:
    """Joint maximum likelihood of every DCC parameter, by default started from the two-step estimate.

    ``bayesvol.fit(DCC(), y)`` runs this function; it then optimises the exact joint likelihood with
    [`bayesvol.fit`][bayesvol.fit] (``direct=True``) from ``start`` or, when none is given, from `fit_two_step`
    (computed with default settings and its warnings silenced).
    """
    if start is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            two_step = fit_two_step(model, y, fit=fit)
        start = [{n: np.asarray(v) for n, v in two_step.params.items()}]
    return fit(model, y, "exact", direct=True, start=start, **fit_options)
