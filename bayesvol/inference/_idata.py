"""Assemble ``arviz.InferenceData`` in the package's conventions (DESIGN.md §6)."""

from __future__ import annotations

import arviz as az
import numpy as np

from bayesvol._validation import time_coords
from bayesvol._version import __version__

TIME_SITES = ("h", "vol", "h_std", "latent")


def build(model, y, index, posterior: dict, *, sample_stats=None, log_likelihood=None,
          posterior_predictive=None, attrs=None) -> az.InferenceData:
    """InferenceData with ``time`` dims on the latent path and the observations.

    ``posterior`` and the other groups hold arrays shaped ``(chain, draw, ...)``.
    """
    if hasattr(model, "site_dims"):
        dims, coords = model.site_dims(index, y)
    else:
        dims = {name: ["time"] for name in TIME_SITES if name in posterior}
        dims["y"] = ["time"]
        coords = {"time": time_coords(index, y.shape[0])}
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
        "log_likelihood": getattr(model, "loglik_kind",
                                  "conditional: log p(y_t | h_t, theta), given the latent path"),
    }
    meta.update(attrs or {})
    for group in idata.groups():
        getattr(idata, group).attrs.update({k: v for k, v in meta.items()})
    return idata
