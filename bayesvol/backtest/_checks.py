"""Input checks of the backtest layer: levels, hit sequences, aligned series, weights.

Every check raises `ValueError` (or `TypeError` for the wrong kind of object) with a
message that names the argument and what to fix.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

MIN_HITS = 10


def check_level(level, name: str = "level", tail: bool = True) -> float:
    """A probability strictly between 0 and 1; with ``tail`` also below one half (a lower-tail probability)."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1); got {type(level).__name__}")
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1; got {level!r}")
    if tail and level >= 0.5:
        raise ValueError(
            f"{name} is the tail probability alpha of the loss (0.01 for a 99% VaR); got {level!r} — "
            f"pass {1.0 - level:.6g} for a coverage of {level:.6g}"
        )
    return level


def check_significance(significance) -> float:
    return check_level(significance, "significance", tail=False)


def as_float_array(x, name: str) -> np.ndarray:
    """``x`` as a float64 array, refusing non-numeric input, NaN and inf."""
    if isinstance(x, (pd.Series, pd.DataFrame)):
        values = x.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            values = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be numeric: {err}") from None
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.unravel_index(int(np.flatnonzero(bad)[0]), values.shape)
        where = first[0] if len(first) == 1 else first
        kind = "NaN" if np.isnan(values[first]) else "inf"
        raise ValueError(f"{name} holds {int(bad.sum())} non-finite value(s) (first: {kind} at {where}); "
                         "drop or fill them before backtesting")
    return values


def as_series(x, name: str, min_length: int = 1) -> np.ndarray:
    """A one-dimensional finite float series with at least ``min_length`` entries."""
    values = as_float_array(x, name)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per time step); got shape {values.shape}")
    if values.shape[0] < min_length:
        raise ValueError(f"{name} has {values.shape[0]} observation(s); at least {min_length} are needed")
    return values


def as_hits(hits, name: str = "hits", min_length: int = MIN_HITS) -> np.ndarray:
    """A 0/1 hit sequence (booleans or numbers equal to 0 or 1) as an int64 array."""
    values = as_series(hits, name, min_length)
    if not np.all((values == 0.0) | (values == 1.0)):
        bad = values[(values != 0.0) & (values != 1.0)][0]
        raise ValueError(f"{name} must hold only 0/1 (or False/True) exception indicators; found {bad!r} — "
                         "build hits with bayesvol.backtest.exceedances(returns, var)")
    return values.astype(np.int64)


def same_length(**arrays) -> int:
    """The common first-axis length of the named arrays, or an error naming each length."""
    lengths = {name: np.shape(a)[0] if np.ndim(a) else 1 for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name}: {n}" for name, n in lengths.items())
        raise ValueError(f"lengths differ ({listed}); the series must be aligned on the same time steps")
    return next(iter(lengths.values()))


def index_of(x) -> pd.Index | None:
    return x.index if isinstance(x, (pd.Series, pd.DataFrame)) else None


def check_weights(weights, num_assets: int, num_timesteps: int | None = None, atol: float = 1e-8) -> np.ndarray:
    """Portfolio weights: ``(N,)`` fixed, or ``(T, N)`` one row per time step; each row sums to one."""
    w = as_float_array(weights, "weights")
    if w.ndim not in (1, 2) or w.shape[-1] != num_assets:
        raise ValueError(f"weights must have one entry per asset ({num_assets}); got shape {w.shape}")
    if w.ndim == 2 and num_timesteps is not None and w.shape[0] != num_timesteps:
        raise ValueError(f"time-varying weights need one row per time step ({num_timesteps}); got {w.shape[0]} rows")
    sums = w.sum(axis=-1)
    if not np.allclose(sums, 1.0, rtol=0.0, atol=atol):
        worst = float(np.atleast_1d(sums)[np.argmax(np.abs(np.atleast_1d(sums) - 1.0))])
        raise ValueError(f"weights must sum to one (fully invested portfolio); they sum to {worst!r}")
    return w
