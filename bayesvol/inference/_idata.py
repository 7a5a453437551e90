"""Assemble ArviZ 1.x ``xarray.DataTree`` results in the package's conventions (DESIGN.md §6).

The one place that builds result trees: posteriors from the samplers (`build`) and maximum-likelihood
estimates under the posterior's variable names and dims (`from_mle`), so that one table or forest plot
shows both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayesvol._version import __version__

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["MLE_GROUPS", "build", "from_mle", "model_attrs"]

#: Groups of the tree of a maximum-likelihood fit: estimates, inverse-information and sandwich standard errors.
MLE_GROUPS = ("estimate", "std_error", "robust_std_error")


def model_attrs(model) -> dict:
    """Attributes that say which model and which bayesvol made a result."""
    return {"model": model.describe(), "model_repr": repr(model), "bayesvol_version": __version__}


def _netcdf_safe(attrs: dict) -> dict:
    # netCDF stores strings and numbers only: booleans become 0/1, sequences one comma-separated string.
    safe = {}
    for key, value in attrs.items():
        if isinstance(value, bool | np.bool_):
            value = int(value)
        elif isinstance(value, list | tuple):
            value = ", ".join(map(str, value))
        elif value is None:
            value = ""
        safe[key] = value
    return safe


def build(model, y, index, posterior: dict, *, sample_stats=None, log_likelihood=None,
          posterior_predictive=None, attrs=None) -> xr.DataTree:
    """Posterior tree with ``time`` dims on the latent path and the observations.

    Parameters
    ----------
    model : bayesvol model
        Gives the dims and coords (``site_dims``), the description and the kind of log-likelihood.
    y : numpy.ndarray
        The observations, ``(time,)`` or ``(time, asset)``.
    index : pandas.Index, PanelIndex or None
        Labels of ``y`` (dates become the ``time`` coordinate).
    posterior : dict of str to numpy.ndarray
        Draws shaped ``(chain, draw, ...)``; so are ``sample_stats``, ``log_likelihood`` and
        ``posterior_predictive``.
    attrs : dict, optional
        Added to every group's attributes (after the model's; ``log_likelihood`` overrides the model's kind).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``observed_data`` and those given of ``sample_stats``, ``log_likelihood``,
        ``posterior_predictive``.
    """
    # Imported here: arviz and xarray cost seconds at import and only results need them.
    import arviz_base

    dims, coords = model.site_dims(index, y)
    data = {
        "posterior": {k: np.asarray(v) for k, v in posterior.items()},
        "observed_data": {"y": np.asarray(y)},
    }
    if sample_stats:
        data["sample_stats"] = {k: np.asarray(v) for k, v in sample_stats.items()}
    if log_likelihood is not None:
        data["log_likelihood"] = {"y": np.asarray(log_likelihood)}
    if posterior_predictive is not None:
        data["posterior_predictive"] = {"y": np.asarray(posterior_predictive)}
    used = {dim for group in data.values() for name in group for dim in dims.get(name, ())}
    dims = {name: dim for name, dim in dims.items() if any(name in group for group in data.values())}
    coords = {name: values for name, values in coords.items() if name in used}
    meta = model_attrs(model) | {"log_likelihood": model.loglik_kind} | dict(attrs or {})
    meta = _netcdf_safe(meta)
    return arviz_base.from_dict(data, coords=coords, dims=dims, attrs={"/": meta} | {group: meta for group in data})


def _mle_dims(result) -> tuple[dict, dict]:
    """Dims and coords of each parameter as the posterior of the same data has them."""
    shape = getattr(result, "data_shape", None)
    if shape is None:
        return {}, {}
    dims, coords = result.model.site_dims(getattr(result, "data_index", None), np.zeros(shape))
    return dims, coords


def from_mle(result) -> xr.DataTree:
    """A maximum-likelihood fit as a tree whose variables carry the model's parameter names.

    Parameters
    ----------
    result : MLEResult
        From [`bayesvol.fit`][bayesvol.fit].

    Returns
    -------
    xarray.DataTree
        Groups ``estimate``, ``std_error`` (inverse observed information) and ``robust_std_error``
        (sandwich), each with one variable per parameter on
        the dims the posterior of the same data has (``asset``, ``factor``, ...), without ``chain`` and
        ``draw``; attrs hold the method, log-likelihood, AIC, BIC, observations and convergence.
    """
    import xarray as xr

    dims, coords = _mle_dims(result)
    names = list(result.model.param_names)
    sources = {"estimate": result.params, "std_error": result.se, "robust_std_error": result.robust_se}
    groups = {}
    for group, values in sources.items():
        variables = {}
        for name in names:
            value = np.asarray(values[name], dtype=np.float64)
            var_dims = dims.get(name)
            if var_dims is None or len(var_dims) != value.ndim:
                var_dims = [f"{name}_dim_{axis}" for axis in range(value.ndim)]
            var_coords = {dim: coords[dim] for dim in var_dims if dim in coords}
            variables[name] = xr.DataArray(value, dims=var_dims, coords=var_coords)
        groups[group] = xr.Dataset(variables)
    meta = model_attrs(result.model) | {
        "inference": f"maximum likelihood ({result.method})", "method": result.method,
        "loglik": float(result.loglik), "aic": float(result.aic), "bic": float(result.bic), "nobs": int(result.nobs),
        "num_params": int(result.num_params), "converged": bool(result.converged), "message": result.message,
        "at_boundary": list(result.at_boundary), "warnings": "; ".join(result.warnings)}
    meta = _netcdf_safe(meta)
    for dataset in groups.values():
        dataset.attrs.update(meta)
    return xr.DataTree.from_dict({"/": xr.Dataset(attrs=meta)} | groups)
