"""Input checks shared by every model and estimator: the one validation layer at the public boundary.

Each check raises `ValueError` with a message that names the argument, shows the offending value
and says how to fix it, so the command line can print it as one line and users of the Python API see what
to change. The checks are:

* returns hold real numbers: booleans, dates, durations, complex numbers and text are refused rather than
  converted (``as_returns``, ``as_panel_values``, `real_values`); a missing return (NaN) passes only for
  a model that declares ``supports_missing`` (``as_returns(..., allow_missing=True)``), inf never;
* a pandas date index is in increasing order, without duplicates or missing dates; an unsorted index is
  refused, not sorted, because the order of the rows is the order of time in every likelihood and a silent
  re-ordering would hide a data problem (`check_time_index`);
* returns whose squares overflow or underflow double precision are refused with the advice to rescale
  (`check_magnitude`);
* counts such as ``num_timesteps`` are integers (Python or numpy) of at least a minimum (`as_count`);
* a seed is an integer, ``None`` (a fresh random seed from the operating system) or a JAX random key
  (`as_key`);
* each parameter has the number of dimensions its model expects (`check_parameter_shape`).
"""

from __future__ import annotations

import decimal
import math
import numbers
import secrets
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

MIN_OBSERVATIONS = 20

# Largest finite double and smallest normal one: squares beyond them are inf or lose all precision.
_FLOAT_MAX = float(np.finfo(np.float64).max)
_FLOAT_TINY = float(np.finfo(np.float64).tiny)


class ConvergenceWarning(UserWarning):
    """An estimate or a sampler's output may not be what it claims to be (no convergence, divergences, ...)."""


class StationarityWarning(UserWarning):
    """Parameters at which the likelihood is defined but the model is not covariance-stationary (persistence
    of one or more): the value is returned, but unconditional moments and long-horizon forecasts do not exist."""


class Series1D(NamedTuple):
    """A validated univariate series: float64 values and, if the input had one, its index."""

    values: np.ndarray
    index: pd.Index | None


# --- real numbers ----------------------------------------------------------------------------------------
_DTYPE_ADVICE = {
    "b": "booleans are not returns; cast with y.astype(float) if the 0/1 values are meant",
    "M": "these are dates, not returns; pass the returns and put the dates in a pandas index",
    "m": "these are durations, not returns",
    "c": "complex numbers are not returns; pass y.real if the imaginary parts are zero",
}


def _label(label) -> str:
    """A date as ``YYYY-MM-DD`` (with the time of day only where there is one), any other label as its repr."""
    if isinstance(label, pd.Timestamp):
        return f"{label:%Y-%m-%d}" if label == label.normalize() else str(label)
    return str(label) if isinstance(label, pd.Period) else repr(label)


def _where(position: int, index) -> str:
    """Position ``position`` as a date or label where ``index`` has one, else as a row number."""
    if index is not None and position < len(index):
        return _label(index[position])
    return f"position {position}"


def _first_non_number(values: np.ndarray):
    """Position and value of the first entry of an object array that is not a real number (None: all are)."""
    for position, value in enumerate(values.ravel()):
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real | decimal.Decimal):
            return position, value
    return None


def check_real_dtype(dtype, name: str = "y") -> None:
    """Refuse a dtype that is not a real number (bool, datetime64, timedelta64, complex).

    Object and string dtypes are left to `real_values`, which looks at the entries.

    Raises
    ------
    ValueError
        Naming ``name``, the dtype and the fix.
    """
    kind = np.dtype(dtype).kind if not isinstance(dtype, pd.api.extensions.ExtensionDtype) else dtype.kind
    if kind in _DTYPE_ADVICE:
        raise ValueError(f"{name} must be numeric (real numbers); got dtype {dtype}: {_DTYPE_ADVICE[kind]}")


def real_values(y, name: str = "y", index=None) -> np.ndarray:
    """``y`` as a float64 numpy array after checking that every entry is a real number.

    Missing values (``None``, ``pandas.NA``, NaN) become NaN, for the caller to report with its own context.

    Parameters
    ----------
    y : array_like, pandas.Series or pandas.DataFrame
        The values; a DataFrame is checked column by column so that the message names the column.
    name : str
        Name of the argument in messages.
    index : pandas.Index, optional
        Labels of the rows, used to say where a bad entry is.

    Raises
    ------
    ValueError
        For booleans, dates, durations, complex numbers or text.
    """
    if isinstance(y, pd.DataFrame):
        for position, column in enumerate(y.columns):
            real_values(y.iloc[:, position], f"column {column!r} of {name}", y.index)
        return y.to_numpy(dtype=np.float64, na_value=np.nan)
    if isinstance(y, pd.Series):
        index = y.index if index is None else index
        check_real_dtype(y.dtype, name)
        if y.dtype.kind in "iuf":
            return y.to_numpy(dtype=np.float64, na_value=np.nan)
        raw = y.to_numpy(dtype=object)
    else:
        try:
            raw = np.asarray(y)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be numeric (an array of real numbers): {err}") from None
        check_real_dtype(raw.dtype, name)
        if raw.dtype.kind in "iuf":
            return raw.astype(np.float64, copy=False)
        raw = raw.astype(object)
    bad = _first_non_number(raw)
    if bad is not None:
        position, value = bad
        where = _where(position, index) if raw.ndim == 1 else f"flat position {position}"
        raise ValueError(f"{name} must be numeric (real numbers); got {value!r} ({type(value).__name__}) at {where}: "
                         "fix or drop that entry (pandas.to_numeric(..., errors='coerce') turns text into NaN)")
    return np.array([np.nan if v is None or v is pd.NA else float(v) for v in raw.ravel()],
                    dtype=np.float64).reshape(raw.shape)


# --- the time index ----------------------------------------------------------------------------------
def check_time_index(index, name: str = "y") -> None:
    """Refuse a date index that is unsorted, has duplicate dates or missing dates (NaT).

    Only date-like indexes (`pandas.DatetimeIndex`, `pandas.PeriodIndex`) are checked: their
    order is the order of time. An unsorted index is refused rather than sorted silently, since every
    likelihood reads the rows in the order given.

    Raises
    ------
    ValueError
        Naming the first offending date and the fix (``.sort_index()``, dropping duplicates).
    """
    if not isinstance(index, pd.DatetimeIndex | pd.PeriodIndex):
        return
    if index.hasnans:
        position = int(np.flatnonzero(index.isna())[0])
        raise ValueError(f"the date index of {name} has a missing date (NaT) at row {position}; drop that row "
                         f"or give it its date")
    if not index.is_unique:
        duplicated = index[index.duplicated()]
        first = duplicated[0]
        count = int((index == first).sum())
        raise ValueError(f"the date index of {name} has duplicate dates ({len(duplicated)} repeated; first "
                         f"{_label(first)}, {count} rows): keep one row per date, e.g. "
                         f"{name}[~{name}.index.duplicated(keep='last')]")
    if not index.is_monotonic_increasing:
        position = int(np.flatnonzero(np.asarray(index[1:] < index[:-1]))[0])
        raise ValueError(f"the date index of {name} is not in increasing order ({_label(index[position])} is "
                         f"followed by {_label(index[position + 1])}); rows are read in time order, so sort them "
                         f"first: {name}.sort_index()")


# --- magnitude -------------------------------------------------------------------------------------------
def check_magnitude(values, name: str = "y", index=None) -> None:
    """Refuse returns whose squares overflow (or underflow) double precision, with the advice to rescale.

    Every likelihood works with squared returns (variances, sums of squares, outer products); when their sum
    is not a finite double, the log-likelihood would be ``-inf`` or NaN whatever the parameters. Non-finite
    entries are ignored here (the callers report them).

    Raises
    ------
    ValueError
        Naming the largest value, where it is and the scale to divide by.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return
    magnitude = np.where(finite, np.abs(values), 0.0)
    largest = float(magnitude.max())
    if largest == 0.0:
        return
    exponent = int(math.floor(math.log10(largest)))
    with np.errstate(over="ignore"):
        total = float(np.sum(np.square(magnitude)))
    position = int(np.argmax(magnitude.reshape(magnitude.shape[0], -1).max(axis=1))) if values.ndim else 0
    if not math.isfinite(total) or total > _FLOAT_MAX:
        raise ValueError(f"{name} holds values as large as {largest:.3g} (at {_where(position, index)}): their "
                         f"squares overflow double precision (largest {_FLOAT_MAX:.3g}), so every likelihood "
                         f"would be infinite; rescale {name}, e.g. {name} / 1e{exponent} (percent returns are of "
                         "order 1)")
    if largest * largest < _FLOAT_TINY:
        raise ValueError(f"{name} holds no value larger than {largest:.3g} in absolute value: their squares "
                         f"underflow double precision (smallest normal {_FLOAT_TINY:.3g}); rescale {name}, e.g. "
                         f"{name} * 1e{-exponent} (percent returns are of order 1)")


# --- returns -----------------------------------------------------------------------------------------
def as_returns(y, name: str = "y", min_length: int = MIN_OBSERVATIONS, *, allow_missing: bool = False,
               owner: str | None = None) -> Series1D:
    """Validate a univariate return series.

    Parameters
    ----------
    y : array_like or pandas.Series
        Returns, one per time step (percent log returns in the package's examples). A pandas date index
        must be in increasing order without duplicates (see `check_time_index`).
    name : str
        Name used in error messages.
    min_length : int
        Fewest observations accepted (observed values, when some are missing).
    allow_missing : bool
        Accept missing returns (NaN, ``None``, ``pandas.NA``) for a model that declares it handles them
        (``supports_missing``); they stay NaN in the values. Infinite values are refused either way.
    owner : str, optional
        The model's name, for the message that says it does not support missing values.

    Returns
    -------
    Series1D
        The values as a float64 numpy array and the pandas index (``None`` for arrays).

    Raises
    ------
    ValueError
        If ``y`` holds something other than real numbers, has an unsorted or repeated date index, is not
        one-dimensional, holds inf (or NaN unless ``allow_missing``), has values whose squares overflow, has
        fewer than ``min_length`` observed values (none at all: every value missing) or is constant.
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
        check_time_index(index, name)
    values = real_values(y, name, index)
    if values.ndim != 1:
        squeezed = np.squeeze(values)
        raise ValueError(
            f"{name} must be one-dimensional (a single return series); got shape {values.shape}"
            + (" — use y.ravel() if it holds one series" if squeezed.ndim == 1 else "")
        )
    missing = np.isnan(values)
    bad = np.isinf(values) if allow_missing else ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        where = index[first] if index is not None else first
        kind = "NaN" if np.isnan(values[first]) else "inf"
        advice = ("drop or fill missing returns before fitting (datasets.log_returns(prices, gaps='multi_day') "
                  "spans missing prices)"
                  if owner is None or not missing.any() else
                  f"{owner} does not support missing values; drop or fill them before fitting "
                  "(datasets.log_returns(prices, gaps='multi_day') spans missing prices)")
        raise ValueError(f"{name} holds {int(bad.sum())} non-finite value(s) (first: {kind} at {where}); {advice}")
    num_observed = values.shape[0] - int(missing.sum())
    if allow_missing and num_observed == 0:
        raise ValueError(f"{name} holds no observed value: all {values.shape[0]} are missing (NaN)")
    if num_observed < min_length:
        of_which = f" observed values (of {values.shape[0]}, the rest missing)" if num_observed < values.shape[0] \
            else " observations"
        raise ValueError(
            f"{name} has {num_observed}{of_which}; at least {min_length} are needed to estimate "
            "a volatility model"
        )
    observed = values[~missing]
    if np.ptp(observed) == 0.0:
        raise ValueError(f"{name} is constant (every observed value is {observed[0]!r}); volatility cannot be "
                         "estimated")
    check_magnitude(values, name, index)
    return Series1D(values, index)


def as_panel_values(y, name: str = "y") -> tuple[np.ndarray, pd.Index | None, list | None]:
    """A return panel as float64 ``(values, index, columns)``, before any model-specific check.

    A Series becomes one column and a 1-D array one column; a DataFrame keeps its index and columns
    (``None`` for arrays). Entries must be real numbers, a date index sorted without duplicates, and the
    squares of the finite values representable (see `check_magnitude`). Missing values become NaN, for
    the caller to report with its own context.
    """
    if isinstance(y, pd.Series):
        y = y.to_frame()
    if isinstance(y, pd.DataFrame):
        check_time_index(y.index, name)
        values = real_values(y, name)
        check_magnitude(values, name, y.index)
        return values, y.index, list(y.columns)
    values = real_values(y, name)
    check_magnitude(values, name)
    return (values[:, None] if values.ndim == 1 else values), None, None


def time_coords(index, num_timesteps: int):
    """Coordinates of the ``time`` dim: the data's dates where there are any, else 0..T-1."""
    if index is None:
        return np.arange(num_timesteps)
    if isinstance(index, pd.DatetimeIndex):
        return index.to_numpy()
    return np.asarray(index)


# --- options -----------------------------------------------------------------------------------------
def as_count(value, name: str, minimum: int = 1) -> int:
    """``value`` as a Python int of at least ``minimum``: a Python or numpy integer, not a bool or a float.

    Raises
    ------
    ValueError
        Naming ``name``, the value and what is accepted.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        hint = ""
        if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_) and float(value).is_integer():
            hint = f"; pass {int(value)}"
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r} "
                         f"({type(value).__name__}){hint}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {int(value)}")
    return int(value)


def as_seed(seed, name: str = "seed") -> int:
    """An integer seed from a Python or numpy integer, or a fresh one from the operating system for ``None``.

    Raises
    ------
    ValueError
        If ``seed`` is neither (a float, a bool, a string) or does not fit in 64 bits.
    """
    if seed is None:
        return secrets.randbits(32)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool | np.bool_):
        if not -(2**63) <= int(seed) < 2**64:
            raise ValueError(f"{name} must fit in 64 bits, got {int(seed)}")
        return int(seed)
    raise ValueError(f"{name} must be an integer or None (a fresh random seed), got {seed!r} ({type(seed).__name__})")


def as_key(seed, name: str = "seed") -> jax.Array:
    """A JAX random key from an integer seed, ``None`` or a key.

    ``None`` draws a fresh seed from the operating system's entropy, so two calls give different results;
    pass an integer to make a result reproducible. A key (``jax.random.key`` or ``jax.random.PRNGKey``) is
    returned as it is.

    Raises
    ------
    ValueError
        If ``seed`` is none of these (a float, a bool, a string, an array that is not a key).
    """
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool | np.bool_)):
        return jax.random.PRNGKey(as_seed(seed, name))
    if isinstance(seed, jax.Array | np.ndarray):
        key = jnp.asarray(seed)
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == jnp.uint32 and key.shape == (2,)):
            return key
    raise ValueError(f"{name} must be an integer, None (a fresh random seed) or a jax.random key, got {seed!r} "
                    f"({type(seed).__name__})")


# --- parameters --------------------------------------------------------------------------------------
_SHAPE_WORDS = {0: "a scalar", 1: "a vector", 2: "a matrix"}


def check_parameter_shape(name: str, value, ndim: int, owner: str = "the model") -> None:
    """Refuse a parameter whose number of dimensions is not ``ndim`` (e.g. a vector where a scalar belongs).

    Works on traced values too (the shape is known while tracing).

    Raises
    ------
    ValueError
        Naming the parameter, the expected and the given shape.
    """
    shape = tuple(np.shape(value))
    if len(shape) == ndim:
        return
    expected = _SHAPE_WORDS.get(ndim, f"an array with {ndim} dimensions") + (" (shape ())" if ndim == 0 else "")
    shown = "" if isinstance(value, jax.core.Tracer) else f": {np.asarray(value).tolist()}"
    advice = ("; pass one value per parameter (to evaluate several parameter values, map "
              "bayesvol.log_likelihood_fn with jax.vmap)") if ndim == 0 else ""
    raise ValueError(f"parameter {name!r} of {owner} must be {expected}, got shape {shape}{shown}{advice}")
