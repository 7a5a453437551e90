"""Assemble ``arviz.InferenceData`` in the package's conventions (DESIGN.md §6)."""

from __future__ import annotations

import arviz as az
import numpy as np

from bayesvol._version import __version__


def build(model, y, index, posterior: dict, *, sample_stats=None, log_likelihood=None,
          posterior_predictive=None, attrs=None) -> az.InferenceData:
    """InferenceData with ``time`` dims on the latent path and the observations.

    ``posterior`` and the other groups hold arrays shaped ``(chain, draw, ...)``.
    """
    dims, coords = model.site_dims(index, y)
    dims = {name: dim for name, dim in dims.items() if name in posterior or name == "y"}
    groups = dict(
        posterior={k: np.asarray(v) for k, v in posterior.items()},
        observed_data={"y": np.asarray(y)},
        coords=coords,
        dims=dims,
    )
    if sample_stats:
        groups["sample_stats"] = {k: np.asarray(v) for k, v in sample_stats.items()}
    if log_likelihood is not None:
        groups["log_likelihood"] = {"y": np.asarray(log_likelihood)}
    if posterior_predictive is not None:
        groups["posterior_predictive"] = {"y": np.asarray(posterior_predictive)}
    idata = az.from_dict(**groups)
    meta = {
        "model": model.describe(),
        "model_repr": repr(model),
        "bayesvol_version": __version__,
        "log_likelihood": model.loglik_kind,
    }
    meta.update(attrs or {})
    for group in idata.groups():
        getattr(idata, group).attrs.update({k: v for k, v in meta.items()})
    return idata
