r"""The model confidence set of Hansen, Lunde and Nason (2011), through ``arch.bootstrap.MCS``."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bayesvol.backtest._checks import as_float_array, check_level

__all__ = ["MCSResult", "model_confidence_set"]


@dataclass(frozen=True, repr=False)
class MCSResult:
    """The models in the confidence set and the MCS p-value of each.

    Attributes
    ----------
    included : list of str
        Models in the set (not eliminated at ``size``).
    excluded : list of str
        Models eliminated, in the order of elimination.
    p_values : pandas.Series
        MCS p-value per model: a model is in the set when its p-value is at least ``size``.
    mean_loss : pandas.Series
        Average loss per model.
    size : float
        The test size; the set holds the best models with probability at least ``1 - size``.
    """

    included: list
    excluded: list
    p_values: pd.Series
    mean_loss: pd.Series
    size: float

    def table(self) -> pd.DataFrame:
        """One row per model: mean loss, MCS p-value, whether it is in the set; sorted by p-value."""
        table = pd.DataFrame({"mean_loss": self.mean_loss, "p_value": self.p_values})
        table["included"] = table["p_value"] >= self.size
        table.index.name = "model"
        return table.sort_values("p_value", ascending=False)

    def __repr__(self) -> str:
        return f"MCSResult (size {self.size:g})\n{self.table().to_string()}"

    def _repr_html_(self) -> str:
        return self.table().to_html()


def _as_loss_frame(losses) -> pd.DataFrame:
    if isinstance(losses, dict):
        columns = {str(name): as_float_array(values, f"losses[{name!r}]") for name, values in losses.items()}
        lengths = {name: values.shape for name, values in columns.items()}
        if any(len(shape) != 1 for shape in lengths.values()) or len({s[0] for s in lengths.values()}) > 1:
            listed = ", ".join(f"{name}: {shape}" for name, shape in lengths.items())
            raise ValueError(f"every model needs one loss per time step, all of the same length ({listed})")
        frame = pd.DataFrame(columns)
    elif isinstance(losses, pd.DataFrame):
        frame = pd.DataFrame(as_float_array(losses, "losses"), index=losses.index,
                             columns=[str(c) for c in losses.columns])
    else:
        values = as_float_array(losses, "losses")
        if values.ndim != 2:
            raise ValueError(f"losses must be (T, num_models); got shape {values.shape}")
        frame = pd.DataFrame(values, columns=[f"model {i}" for i in range(values.shape[1])])
    if frame.shape[1] < 2:
        raise ValueError("the model confidence set needs the losses of at least 2 models")
    if frame.shape[0] < 10:
        raise ValueError(f"the model confidence set needs at least 10 observations; got {frame.shape[0]}")
    return frame


def model_confidence_set(losses, size: float = 0.1, reps: int = 1000, block_size: int | None = None,
                         method: str = "R", bootstrap: str = "stationary", seed: int = 0) -> MCSResult:
    r"""Model confidence set of forecasts from their losses (a thin wrapper of ``arch.bootstrap.MCS``).

    Parameters
    ----------
    losses : pandas.DataFrame, dict or array_like
        Losses (lower is better), one column per model and one row per time step: CRPS values, minus the
        log scores, quantile losses. A dict maps model names to loss series.
    size : float
        Test size $\alpha_{MCS}$ in (0, 1); the set contains the best models with probability at
        least $1 - \alpha_{MCS}$.
    reps : int
        Bootstrap replications.
    block_size : int, optional
        Mean block length of the bootstrap (arch's default, $\sqrt T$, when ``None``).
    method : {"R", "max"}
        The range or the max statistic (Hansen, Lunde & Nason 2011, $T_R$ and $T_{max}$).
    bootstrap : str
        The bootstrap of ``arch.bootstrap.MCS``: "stationary", "circular" or "moving block".
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    MCSResult
        The included and excluded models and the MCS p-value of each.

    Notes
    -----
    Starting from all models, the MCS tests equal expected loss with a block bootstrap of the loss
    differences and eliminates the worst model until the test no longer rejects at ``size``. The p-value
    of a model is the largest p-value of the tests up to its elimination. Needs the ``arch`` package.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import model_confidence_set
    >>> rng = np.random.default_rng(0)
    >>> e = rng.standard_normal((500, 3))
    >>> losses = {"good": e[:, 0] ** 2, "also good": e[:, 1] ** 2, "bad": (e[:, 2] + 1.0) ** 2}
    >>> model_confidence_set(losses, reps=500).excluded
    ['bad']
    """
    try:
        from arch.bootstrap import MCS
    except ImportError:
        raise ImportError("model_confidence_set needs the 'arch' package: pip install arch") from None
    size = check_level(size, "size", tail=False)
    if method not in ("R", "max"):
        raise ValueError(f"method must be 'R' or 'max'; got {method!r}")
    frame = _as_loss_frame(losses)
    mcs = MCS(frame, size, reps=reps, block_size=block_size, method=method, bootstrap=bootstrap, seed=seed)
    mcs.compute()
    p_values = mcs.pvalues.iloc[:, 0].reindex(frame.columns).rename("p_value")
    return MCSResult(included=[str(m) for m in mcs.included], excluded=[str(m) for m in mcs.excluded],
                     p_values=p_values, mean_loss=frame.mean().rename("mean_loss"), size=size)

