"""Plots of a backtest: returns with the VaR and ES forecasts and the exceedances; the PIT histogram."""

from __future__ import annotations

import numpy as np
from scipy import stats

from bayesvol.backtest._checks import as_float_array, as_series, index_of, same_length
from bayesvol.backtest.risk import exceedances

__all__ = ["plot_pit", "plot_var"]


def _axes(ax, figsize):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_var(returns, var, es=None, level: float | None = None, ax=None, title: str | None = None):
    r"""Returns with the VaR (and ES) forecasts drawn on the return scale and the exceedances marked.

    Parameters
    ----------
    returns : array_like or pandas.Series
        Realised returns; a Series' index (dates) is the x-axis.
    var : float or array_like
        VaR forecasts as positive losses; drawn as $-\mathrm{VaR}_t$.
    es : float or array_like, optional
        ES forecasts as positive losses; drawn dashed as $-\mathrm{ES}_t$.
    level : float, optional
        Tail probability, for the legend.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (a new figure otherwise).
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import plot_var
    >>> returns = np.random.default_rng(0).standard_normal(250)
    >>> ax = plot_var(returns, 2.33, es=2.67, level=0.01)
    >>> ax.get_legend_handles_labels()[1][1]
    'VaR 1%'
    """
    y = as_series(returns, "returns")
    hits = exceedances(y, var).astype(bool)
    v = np.broadcast_to(as_float_array(var, "var"), y.shape)
    index = index_of(returns)
    x = np.arange(y.size) if index is None else index
    ax = _axes(ax, (11, 4))
    suffix = "" if level is None else f" {100 * level:g}%"
    ax.plot(x, y, color="0.55", lw=0.6, label="returns")
    ax.plot(x, -v, color="C0", lw=1.2, label=f"VaR{suffix}")
    if es is not None:
        e = as_float_array(es, "es")
        if e.ndim:
            same_length(returns=y, es=e)
        ax.plot(x, -np.broadcast_to(e, y.shape), color="C3", lw=1.0, ls="--", label=f"ES{suffix}")
    ax.scatter(np.asarray(x)[hits], y[hits], color="C3", s=18, zorder=3,
               label=f"exceedances ({int(hits.sum())} of {y.size})")
    ax.set_ylabel("return")
    ax.legend(loc="lower left", fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def plot_pit(pit_values, bins: int = 10, band: float = 0.95, ax=None, title: str | None = None):
    r"""Histogram of PIT values with the uniform density and a pointwise band for the bin counts.

    Parameters
    ----------
    pit_values : array_like
        Values in [0, 1], e.g. from [`bayesvol.backtest.pit`][bayesvol.backtest.pit].
    bins : int
        Number of equal-width bins.
    band : float
        Probability of the band: each bin count of $n$ uniform values is Binomial($n$, 1/bins).
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import plot_pit
    >>> ax = plot_pit(np.random.default_rng(0).random(500))
    >>> len(ax.containers[0])  # the bars
    10
    """
    u = as_series(pit_values, "pit_values")
    if np.any((u < 0) | (u > 1)):
        raise ValueError("pit_values must lie in [0, 1]")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer of at least 2; got {bins!r}")
    ax = _axes(ax, (5, 3.5))
    edges = np.linspace(0.0, 1.0, bins + 1)
    ax.hist(u, bins=edges, density=True, color="C0", alpha=0.6, edgecolor="white")
    lower, upper = stats.binom.ppf([(1 - band) / 2, (1 + band) / 2], u.size, 1.0 / bins) * bins / u.size
    ax.axhspan(lower, upper, color="0.5", alpha=0.2, lw=0, label=f"{band:.0%} band under uniformity")
    ax.axhline(1.0, color="k", lw=1.0)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("PIT")
    ax.set_ylabel("density")
    ax.legend(loc="upper center", fontsize="small")
    if title:
        ax.set_title(title)
    return ax
