"""Input checks shared by every model and estimator.

Each check raises :class:`ValueError` with a message that names the problem, so the command line can
print it as one line and users of the Python API see what to fix.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

MIN_OBSERVATIONS = 20


class ConvergenceWarning(UserWarning):
    """An estimate or a sampler's output may not be what it claims to be (no convergence, divergences, ...)."""


class Series1D(NamedTuple):
    """A validated univariate series: float64 values and, if the input had one, its index."""

    values: np.ndarray
    index: pd.Index | None


def as_returns(y, name: str = "y", min_length: int = MIN_OBSERVATIONS) -> Series1D:
    """Validate a univariate return series.

    Parameters
    ----------
    y : array_like or pandas.Series
        Returns, one per time step (percent log returns in the package's examples).
    name : str
        Name used in error messages.
    min_length : int
        Fewest observations accepted.

    Returns
    -------
    Series1D
        The values as a float64 numpy array and the pandas index (``None`` for arrays).

    Raises
    ------
    ValueError
        If ``y`` is not one-dimensional, holds NaN or inf, is shorter than ``min_length`` or is constant.
    """
    index = None
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ValueError(
                f"{name} must be one-dimensional (a single return series); got a DataFrame with "
                f"{y.shape[1]} columns — pick one column, e.g. df['DEXUSUK']"
            )
        y = y.iloc[:, 0]
    if isinstance(y, pd.Series):
        index = y.index
        values = y.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            values = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be numeric: {err}") from None
    if values.ndim != 1:
        squeezed = np.squeeze(values)
        raise ValueError(
            f"{name} must be one-dimensional (a single return series); got shape {values.shape}"
            + (" — use y.ravel() if it holds one series" if squeezed.ndim == 1 else "")
        )
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        where = index[first] if index is not None else first
        kind = "NaN" if np.isnan(values[first]) else "inf"
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite value(s) (first: {kind} at {where}); "
            "drop or fill missing returns before fitting (datasets.log_returns drops missing prices)"
        )
    if values.shape[0] < min_length:
        raise ValueError(
            f"{name} has {values.shape[0]} observations; at least {min_length} are needed to estimate "
            "a volatility model"
        )
    if np.ptp(values) == 0.0:
        raise ValueError(f"{name} is constant (every value is {values[0]!r}); volatility cannot be estimated")
    return Series1D(values, index)


def as_panel_values(y, name: str = "y") -> tuple[np.ndarray, pd.Index | None, list | None]:
    """A return panel as float64 ``(values, index, columns)``, before any model-specific check.

    A Series becomes one column and a 1-D array one column; a DataFrame keeps its index and columns
    (``None`` for arrays). Missing values become NaN, for the caller to report with its own context.
    """
    if isinstance(y, pd.Series):
        y = y.to_frame()
    if isinstance(y, pd.DataFrame):
        return y.to_numpy(dtype=np.float64, na_value=np.nan), y.index, list(y.columns)
    try:
        values = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric: {err}") from None
    return (values[:, None] if values.ndim == 1 else values), None, None


def time_coords(index, num_timesteps: int):
    """Coordinates of the ``time`` dim: the data's dates where there are any, else 0..T-1."""
    if index is None:
        return np.arange(num_timesteps)
    if isinstance(index, pd.DatetimeIndex):
        return index.to_numpy()
    return np.asarray(index)
