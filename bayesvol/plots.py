"""Plots of posterior volatility and sampler diagnostics (matplotlib, through ArviZ where it has one)."""

from __future__ import annotations

import arviz as az
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_rank", "plot_trace", "plot_volatility"]


def plot_volatility(idata, *, hdi_prob: float = 0.9, ax=None, title: str | None = None):
    """Returns with the posterior conditional standard deviation: median and central band.

    Parameters
    ----------
    idata : arviz.InferenceData
        With ``posterior["vol"]`` and ``observed_data["y"]`` on dim ``time``.
    hdi_prob : float
        Mass of the central posterior band of ``vol`` (equal-tailed quantiles).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    if "vol" not in idata.posterior:
        raise ValueError("idata.posterior has no 'vol'; it comes from bayesvol.sample")
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 4))
    time = idata.posterior["vol"]["time"].values
    y = idata.observed_data["y"].values
    vol = idata.posterior["vol"].stack(sample=("chain", "draw")).transpose("time", "sample").values
    lower, median, upper = np.quantile(vol, [(1 - hdi_prob) / 2, 0.5, (1 + hdi_prob) / 2], axis=1)
    ax.plot(time, y, color="0.6", lw=0.5, label="returns")
    ax.plot(time, median, color="C0", lw=1.2, label=f"posterior median vol ({hdi_prob:.0%} band)")
    ax.plot(time, -median, color="C0", lw=1.2)
    ax.fill_between(time, lower, upper, color="C0", alpha=0.35, lw=0)
    ax.fill_between(time, -upper, -lower, color="C0", alpha=0.35, lw=0)
    ax.set_ylabel("return / ± conditional sd")
    ax.set_title(title or f"{idata.posterior.attrs.get('model', 'model')}: returns and posterior volatility")
    ax.legend(loc="upper right", frameon=False)
    ax.margins(x=0)
    return ax


def plot_trace(idata, var_names=None, **kwargs):
    """Trace and density per chain of the parameters (ArviZ ``plot_trace``)."""
    var_names = var_names or _parameter_names(idata)
    return az.plot_trace(idata, var_names=var_names, compact=False, **kwargs)


def plot_rank(idata, var_names=None, **kwargs):
    """Rank plots of the parameters: flat histograms per chain mean the chains mix (ArviZ ``plot_rank``)."""
    var_names = var_names or _parameter_names(idata)
    return az.plot_rank(idata, var_names=var_names, **kwargs)


def _parameter_names(idata) -> list[str]:
    """Posterior variables without a ``time`` dim: the model's parameters."""
    return [name for name, var in idata.posterior.data_vars.items() if "time" not in var.dims]
