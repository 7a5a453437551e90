"""What the command line writes: a posterior (compact or whole) or a maximum-likelihood result, with plots.

A posterior of a latent-state model holds, besides its few parameters, paths with one value per date and
draw (the log-variance ``h``, the volatility ``vol``), a pointwise log-likelihood and replicated returns of
the same size: for SV on 945 returns with 4 x 1000 draws that is 4 x 30 MB in float64, and netCDF's zlib
compression takes only about a tenth off (posterior draws are close to random bits). `compact_tree`
keeps what a reader of the results uses and summarises the rest:

* ``posterior``: every draw of every parameter (float64, unchanged), so summaries, trace plots, R-hat and
  ESS read the saved file exactly as they read the sampler's output;
* ``posterior_quantiles`` and ``posterior_mean``: for each variable with a ``time`` dimension (``h``,
  ``vol``, ...), quantiles over all draws (dim ``quantile`` = 0.05, 0.25, 0.5, 0.75, 0.95) and the posterior
  mean, under the variable's name; for DFSV also ``vol_asset``, the per-asset conditional standard
  deviation
  ([`bayesvol.inference.conditional.posterior_volatility`][bayesvol.inference.conditional.posterior_volatility]);
* ``posterior_paths``: those variables for at most `PATH_DRAWS` draws (evenly spaced in every chain,
  with their original ``draw`` numbers), in float32 (seven significant digits, far finer than their
  Monte Carlo error), for plots of single paths;
* ``posterior_predictive_quantiles`` and ``posterior_predictive_mean``: the same for the replicated returns;
* ``sample_stats`` and ``observed_data`` unchanged.

The pointwise ``log_likelihood`` is left out: it is a function of the saved parameter draws and data, and
[`bayesvol.compare.add_predictive_log_likelihood`][bayesvol.compare.add_predictive_log_likelihood] rebuilds the
one-step-ahead version that ``arviz_stats.loo`` needs. ``bayesvol fit --save full`` writes the whole tree instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayesvol.inference.conditional import posterior_volatility

__all__ = ["PATH_DRAWS", "QUANTILES", "compact_tree", "write_netcdf"]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
PATH_DRAWS = 100
SAMPLE_DIMS = ("chain", "draw")


def _summaries(dataset: xr.Dataset, quantiles) -> tuple[xr.Dataset, xr.Dataset]:
    """Quantiles over (chain, draw) of every variable (dim ``quantile``), and the means, under the same names."""
    # Not draws any more: ArviZ must not take these groups for samples over (chain, draw).
    attrs = {key: value for key, value in dataset.attrs.items() if key != "sample_dims"}
    quantile = dataset.quantile(list(quantiles), dim=SAMPLE_DIMS)
    return quantile.assign_attrs(attrs), dataset.mean(SAMPLE_DIMS).assign_attrs(attrs)


def _thinned(dataset: xr.Dataset, path_draws: int) -> xr.Dataset:
    """At most ``path_draws`` draws in all (evenly spaced in each chain), in float32."""
    per_chain = max(1, path_draws // dataset.sizes["chain"])
    keep = np.unique(np.linspace(0, dataset.sizes["draw"] - 1, min(per_chain, dataset.sizes["draw"])).round())
    thinned = dataset.isel(draw=keep.astype(int))
    return thinned.astype({name: np.float32 for name, values in thinned.data_vars.items()
                           if values.dtype.kind == "f"})


def compact_tree(idata: xr.DataTree, *, quantiles=QUANTILES, path_draws: int = PATH_DRAWS) -> xr.DataTree:
    """A posterior tree of a few MB: parameters in full, per-date paths as quantiles and a few draws.

    Parameters
    ----------
    idata : xarray.DataTree
        A posterior from [`bayesvol.sample`][bayesvol.sample].
    quantiles : sequence of float
        Levels of the quantiles over draws kept for variables with a ``time`` dimension.
    path_draws : int
        Most draws of those variables kept as they are (float32).

    Returns
    -------
    xarray.DataTree
        The groups described in this module's docstring; its root ``attrs["saved"]`` says what was
        summarised.
    """
    if path_draws < 1:
        raise ValueError(f"path_draws must be at least 1, got {path_draws!r}")
    posterior = idata["posterior"].to_dataset()
    timed = [name for name, values in posterior.data_vars.items() if "time" in values.dims]
    parameters = posterior.drop_vars(timed)
    used = {dim for values in parameters.data_vars.values() for dim in values.dims}
    groups = {"posterior": parameters.drop_vars([name for name, coord in parameters.coords.items()
                                                         if not set(coord.dims) <= used])}
    if timed:
        paths = posterior[timed]
        if "vol" in posterior and "factor" in posterior["vol"].dims:
            # DFSV's vol is the factors'; the per-asset volatility needs every draw of the loadings, so it is
            # summarised here, while the draws are at hand.
            paths["vol_asset"] = posterior_volatility(idata)
        groups["posterior_quantiles"], groups["posterior_mean"] = _summaries(paths, quantiles)
        groups["posterior_paths"] = _thinned(paths, path_draws)
    if "posterior_predictive" in idata.children:
        predictive = idata["posterior_predictive"].to_dataset()
        groups["posterior_predictive_quantiles"], groups["posterior_predictive_mean"] = _summaries(predictive,
                                                                                                  quantiles)
    for name in ("sample_stats", "observed_data"):
        if name in idata.children:
            groups[name] = idata[name].to_dataset()
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update(dict(idata.attrs))
    tree.attrs["saved"] = (
        "compact: parameters in full; per-date variables as quantiles and means over draws "
        "(posterior_quantiles, posterior_mean, posterior_predictive_quantiles, posterior_predictive_mean) and "
        f"{path_draws} or fewer draws in float32 (posterior_paths); log_likelihood left out "
        "(bayesvol.compare.add_predictive_log_likelihood rebuilds it)")
    return tree


def write_netcdf(tree: xr.DataTree, path) -> None:
    """Write ``tree`` to netCDF (h5netcdf) with every numeric variable zlib-compressed."""
    encoding = {}
    for node in tree.subtree:
        numeric = [name for name, values in node.dataset.data_vars.items() if values.dtype.kind in "fiub"]
        if numeric:
            encoding[node.path] = {name: {"zlib": True, "complevel": 4, "shuffle": True} for name in numeric}
    tree.to_netcdf(path, engine="h5netcdf", encoding=encoding)


def estimates_frame(result) -> pd.DataFrame:
    """Estimates, standard errors (inverse information and sandwich), t statistics, p-values and 95% intervals."""
    table = result.to_frame()
    table.insert(2, "robust std err", result.flat(result.robust_se))
    return table


def two_step_tree(result, columns) -> xr.DataTree:
    """Engle's two-step DCC estimate as a tree like [`to_datatree`][bayesvol.MLEResult.to_datatree]'s.

    Groups ``estimate`` and ``std_error`` (each step's inverse observed information; the second step's
    ignores the first step's estimation error), per-asset parameters on the dim ``asset``.
    """
    groups = {}
    for group, values in (("estimate", result.params), ("std_error", result.se)):
        variables = {}
        for name in result.model.param_names:
            value = np.asarray(values[name], dtype=np.float64)
            dims = ("asset",) if value.ndim == 1 else ()
            variables[name] = xr.DataArray(value, dims=dims, coords={"asset": list(columns)} if dims else {})
        groups[group] = xr.Dataset(variables)
    attrs = {"model": result.model.describe(), "method": "two_step", "inference": "two-step maximum likelihood",
             "loglik": float(result.loglik)}
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update(attrs)
    return tree


def plot_moments(moments, returns: pd.DataFrame, title: str):
    """Returns with plus and minus their one-step-ahead conditional standard deviation, one panel per series."""
    import matplotlib.pyplot as plt  # here: only the command line's writers need it

    sd = np.sqrt(np.asarray(moments.variance).reshape(returns.shape))
    fig, axes = plt.subplots(returns.shape[1], 1, figsize=(11, 2.6 * returns.shape[1]), squeeze=False,
                             sharex=True)
    for j, name in enumerate(returns.columns):
        ax = axes[j, 0]
        ax.plot(returns.index, returns.iloc[:, j].to_numpy(), color="0.6", lw=0.5, label="returns")
        ax.plot(returns.index, sd[:, j], color="C1", lw=0.9, label=f"conditional sd ({moments.source})")
        ax.plot(returns.index, -sd[:, j], color="C1", lw=0.9)
        ax.set_title(str(name))
        ax.margins(x=0)
    axes[0, 0].legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
