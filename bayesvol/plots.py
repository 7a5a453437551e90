"""Plots of conditional volatility (posterior or maximum likelihood, matplotlib) and sampler diagnostics
(arviz-plots, matplotlib backend).

The diagnostics plots return an ``arviz_plots.PlotCollection``: ``.savefig(path)`` writes the figure and
``.viz`` holds the matplotlib objects. Posterior against maximum likelihood is
[`bayesvol.compare.plot_estimates`][bayesvol.compare.plot_estimates].
"""

from __future__ import annotations

import arviz_plots
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayesvol.inference.conditional import posterior_volatility
from bayesvol.inference.results import MLEResult

__all__ = ["plot_factors", "plot_forest", "plot_pair", "plot_rank", "plot_trace", "plot_volatility"]


def plot_volatility(source, *, hdi_prob: float = 0.9, ax=None, title: str | None = None):
    """Returns with their conditional standard deviation: a posterior band, or a maximum-likelihood line.

    Every family: one panel for a univariate model, one panel per asset for DCC, DFSV and Wishart SV (the
    per-asset conditional standard deviation, see
    [`bayesvol.inference.conditional.posterior_volatility`][bayesvol.inference.conditional.posterior_volatility]).

    Parameters
    ----------
    source : xarray.DataTree or MLEResult
        A posterior from [`bayesvol.sample`][bayesvol.sample] (``observed_data["y"]`` with ``time``): the posterior
        median and central band of the conditional standard deviation; or a result of [`bayesvol.fit`][bayesvol.fit]
        that holds its data: its [`conditional_volatility`][bayesvol.MLEResult.conditional_volatility].
    hdi_prob : float
        Mass of the central posterior band (equal-tailed quantiles).
    ax : matplotlib.axes.Axes or array of Axes, optional
        One axes per panel.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes or numpy.ndarray of Axes
        The axes of a univariate model, or one axes per asset.
    """
    if not 0.0 < hdi_prob < 1.0:
        raise ValueError(f"hdi_prob must lie strictly between 0 and 1, got {hdi_prob!r}")
    if isinstance(source, MLEResult):
        vol = pd.DataFrame(source.conditional_volatility)
        returns = np.asarray(source.data).reshape(vol.shape)  # present: conditional_volatility needs it
        time, bands = vol.index.to_numpy(), [(None, vol.iloc[:, j].to_numpy(), None) for j in range(vol.shape[1])]
        what, model = "conditional sd (maximum likelihood)", source.model.describe()
    else:
        draws = posterior_volatility(source)
        if "asset" not in draws.dims:
            draws = draws.expand_dims(asset=[0], axis=-1)
        stacked = draws.stack(sample=("chain", "draw")).transpose("time", "asset", "sample").values
        quantiles = np.quantile(stacked, [(1 - hdi_prob) / 2, 0.5, (1 + hdi_prob) / 2], axis=-1)
        time = draws["time"].values
        returns = np.asarray(source.observed_data["y"].values).reshape(stacked.shape[:2])
        bands = [tuple(q[:, j] for q in quantiles) for j in range(stacked.shape[1])]
        vol = pd.DataFrame(quantiles[1], columns=draws["asset"].values)
        what = f"posterior median sd ({hdi_prob:.0%} band)"
        model = source.posterior.attrs.get("model", "model")
    n = len(bands)
    if ax is None:
        _, axes = plt.subplots(n, 1, figsize=(11, 4 if n == 1 else 2.6 * n), squeeze=False, sharex=True)
    else:
        axes = np.asarray(ax, dtype=object).reshape(-1, 1)
        if axes.shape[0] != n:
            raise ValueError(f"ax holds {axes.shape[0]} axes; this source needs {n} (one per asset)")
    for j, (lower, middle, upper) in enumerate(bands):
        panel = axes[j, 0]
        panel.plot(time, returns[:, j], color="0.6", lw=0.5, label="returns")
        panel.plot(time, middle, color="C0", lw=1.2, label=what)
        panel.plot(time, -middle, color="C0", lw=1.2)
        if lower is not None:
            panel.fill_between(time, lower, upper, color="C0", alpha=0.35, lw=0)
            panel.fill_between(time, -upper, -lower, color="C0", alpha=0.35, lw=0)
        panel.set_ylabel("return / ± sd" if n == 1 else f"asset {vol.columns[j]}")
        panel.margins(x=0)
    axes[0, 0].legend(loc="upper right", frameon=False)
    axes[0, 0].set_title(title or f"{model}: returns and conditional volatility")
    return axes[0, 0] if n == 1 else axes[:, 0]


def _diagnostic(plot, idata, var_names, kwargs):
    kwargs.setdefault("backend", "matplotlib")
    return plot(idata, var_names=var_names or _parameter_names(idata), **kwargs)


def plot_trace(idata, var_names=None, **kwargs):
    """Trace and marginal density per chain of the parameters (``arviz_plots.plot_trace_dist``).

    Parameters
    ----------
    idata : xarray.DataTree
        A posterior from [`bayesvol.sample`][bayesvol.sample].
    var_names : list of str, optional
        Variables to show; by default the parameters (posterior variables without a ``time`` dim).
    **kwargs
        Passed to ``arviz_plots.plot_trace_dist`` (``compact``, ``backend``, ...).

    Returns
    -------
    arviz_plots.PlotCollection
    """
    kwargs.setdefault("compact", False)
    return _diagnostic(arviz_plots.plot_trace_dist, idata, var_names, kwargs)


def plot_rank(idata, var_names=None, **kwargs):
    """Fractional rank ECDFs per chain with simultaneous bands (``arviz_plots.plot_rank``).

    Chains that sample one distribution stay inside the bands; one chain outside them has not mixed. A single
    chain is drawn against its simultaneous envelope (``method="envelope"``).

    Parameters
    ----------
    idata, var_names, **kwargs :
        As for [`plot_trace`][bayesvol.plots.plot_trace], passed to ``arviz_plots.plot_rank``.

    Returns
    -------
    arviz_plots.PlotCollection
    """
    # The default multi-chain test needs two chains; one chain gets the simultaneous envelope instead.
    kwargs.setdefault("method", "mtc_c" if idata.posterior.sizes["chain"] > 1 else "envelope")
    return _diagnostic(arviz_plots.plot_rank, idata, var_names, kwargs)


def plot_forest(idata, var_names=None, **kwargs):
    """Forest plot of the parameters: per chain point estimates and credible intervals (``arviz_plots``).

    For posterior and maximum-likelihood estimates in one plot use
    [`bayesvol.compare.plot_estimates`][bayesvol.compare.plot_estimates].

    Parameters
    ----------
    idata, var_names, **kwargs :
        As for [`plot_trace`][bayesvol.plots.plot_trace], passed to ``arviz_plots.plot_forest`` (``combined=True``
        merges chains).

    Returns
    -------
    arviz_plots.PlotCollection
    """
    return _diagnostic(arviz_plots.plot_forest, idata, var_names, kwargs)


def plot_pair(idata, var_names=None, **kwargs):
    """Pairwise scatter plots and marginals of the parameters, divergences marked (``arviz_plots.plot_pair``).

    Parameters
    ----------
    idata, var_names, **kwargs :
        As for [`plot_trace`][bayesvol.plots.plot_trace], passed to ``arviz_plots.plot_pair``.

    Returns
    -------
    arviz_plots.PlotMatrix
    """
    return _diagnostic(arviz_plots.plot_pair, idata, var_names, kwargs)


def _parameter_names(idata) -> list[str]:
    """Posterior variables without a ``time`` dim: the model's parameters."""
    return [name for name, var in idata.posterior.data_vars.items() if "time" not in var.dims]


def plot_factors(source, *, truth=None, time=None, smoothed: bool = True, band: float = 0.9, axes=None,
                 title: str | None = None):
    """Factors and factor log-variances of a DFSV model, one row of two panels per factor.

    Parameters
    ----------
    source : DFSVStates or xarray.DataTree
        Filter output ([`bayesvol.filters.dfsv_methods.filter_states`][bayesvol.filters.dfsv_methods.filter_states]:
        estimate with a normal band of ``band`` mass from its standard deviation) or a posterior from
        [`bayesvol.sample`][bayesvol.sample] (median and equal-tailed band of ``h`` and of the factors ``f`` or their
        smoothed means ``f_mean``).
    truth : tuple of arrays (f, h), optional
        True paths (T, K) of simulated data, drawn in black.
    time : array_like, optional
        x-axis values (default: the posterior's ``time`` coordinate, else 0..T-1).
    smoothed : bool
        For filter output: plot the smoothed (default) or the filtered estimates.
    band : float
        Mass of the plotted band.
    axes : array of matplotlib.axes.Axes, shape (K, 2), optional

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
    """
    from scipy.stats import norm

    if hasattr(source, "posterior"):
        post = source.posterior
        if "h" not in post or not ({"f", "f_mean"} & set(post.data_vars)):
            raise ValueError("the posterior has no DFSV factors: need 'h' and 'f' or 'f_mean' from bayesvol.sample")
        f_name = "f" if "f" in post else "f_mean"
        series = {}
        for label, name in (("factor", f_name), ("log-variance", "h")):
            draws = post[name].stack(sample=("chain", "draw")).transpose("time", "factor", "sample").values
            series[label] = tuple(np.quantile(draws, q, axis=-1) for q in ((1 - band) / 2, 0.5, (1 + band) / 2))
        time = post["time"].values if time is None else time
        what = "posterior median"
    else:
        kind = "smoothed" if smoothed and source.f_smoothed is not None else "filtered"
        z = norm.ppf((1 + band) / 2)
        series = {}
        for label, name in (("factor", "f"), ("log-variance", "h")):
            mean, sd = getattr(source, f"{name}_{kind}"), getattr(source, f"{name}_{kind}_sd")
            series[label] = (mean - z * sd, mean, mean + z * sd)
        what = f"{kind} ({source.method})"
    num_timesteps, k = series["factor"][1].shape
    time = np.arange(num_timesteps) if time is None else np.asarray(time)
    if axes is None:
        _, axes = plt.subplots(k, 2, figsize=(12, 2.6 * k), squeeze=False, sharex=True)
    axes = np.asarray(axes).reshape(k, 2)
    for j in range(k):
        for col, label in enumerate(("factor", "log-variance")):
            ax = axes[j, col]
            lower, middle, upper = (v[:, j] for v in series[label])
            if truth is not None:
                ax.plot(time, np.asarray(truth[col])[:, j], color="k", lw=0.6, label="truth")
            ax.plot(time, middle, color=f"C{col}", lw=1.0, label=what)
            ax.fill_between(time, lower, upper, color=f"C{col}", alpha=0.3, lw=0, label=f"{band:.0%} band")
            ax.set_ylabel(f"{label} {j + 1}")
            ax.margins(x=0)
    axes[0, 0].legend(loc="upper right", frameon=False, fontsize="small")
    axes[0, 0].figure.suptitle(title or f"DFSV factors and factor log-variances: {what}")
    return axes
