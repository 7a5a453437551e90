"""Bundled data sets and helpers to turn prices into returns.

Bundled data (each with a ``*.PROVENANCE.txt`` beside it in ``bayesvol/datasets/data``):

``"fred_h10"``
    Federal Reserve Board H.10 daily noon-buying exchange rates as served by FRED, 23 bilateral USD rates
    and 3 trade-weighted dollar indices, 1971-01-04 to 2014-08-08 (a DataFrame of prices, one column per
    FRED series id, NaN where a series has no quote). Public domain; cite "Board of Governors of the
    Federal Reserve System (US), H.10, retrieved from FRED".
``"gbpusd"``
    GBP/USD daily percent log returns, 1981-10-02 to 1985-06-28 (945 values, a Series): the series of
    Harvey, Ruiz & Shephard (1994) as distributed with Durbin & Koopman, *Time Series Analysis by State
    Space Methods* (sv.dat). Cite both.

Examples
--------
>>> from bayesvol import datasets
>>> y = datasets.load("gbpusd")
>>> y.shape
(945,)
>>> prices = datasets.load("fred_h10")["DEXUSUK"]
>>> r = datasets.log_returns(prices)
>>> r.index.is_monotonic_increasing
True
>>> int(r.isna().sum()) == r.attrs["num_missing"]   # holidays: missing prices give missing returns
True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["available", "load", "load_csv", "log_returns", "provenance"]

_FILES = {
    "fred_h10": "fred_h10_daily_fx_1971_2014",
    "gbpusd": "gbpusd_1981_1985_dk_svdat",
}


def available() -> list[str]:
    """Names accepted by [`load`][bayesvol.datasets.load]."""
    return sorted(_FILES)


def _data_path(filename: str) -> Path:
    return Path(str(resources.files("bayesvol.datasets") / "data" / filename))


def provenance(name: str) -> str:
    """Source, licence and citation of a bundled data set."""
    _check_name(name)
    return _data_path(_FILES[name] + ".PROVENANCE.txt").read_text()


def _check_name(name: str) -> None:
    if name not in _FILES:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(available())}")


def load(name: str) -> pd.DataFrame | pd.Series:
    """Load a bundled data set.

    Parameters
    ----------
    name : str
        ``"fred_h10"`` (DataFrame of daily prices) or ``"gbpusd"`` (Series of percent returns).

    Returns
    -------
    pandas.DataFrame or pandas.Series
        Indexed by a `pandas.DatetimeIndex` named ``date``.
    """
    _check_name(name)
    frame = pd.read_csv(_data_path(_FILES[name] + ".csv.gz"), index_col="date", parse_dates=["date"])
    if name == "gbpusd":
        series = frame["ret_pct"].rename("gbpusd")
        series.attrs["units"] = "percent log return"
        return series
    frame.attrs["units"] = "prices (see the FRED README for each series' units)"
    return frame


def load_csv(path, column: str | None = None, date_column: str | None = None, *, date_format: str | None = None,
             dayfirst: bool = False) -> pd.Series | pd.DataFrame:
    """Read a user's CSV of prices or returns into the same shape [`load`][bayesvol.datasets.load] returns.

    The rows are sorted by date (files often list the newest date first); a date that appears twice is an
    error, as is a cell that is neither a number nor empty (a typo such as ``1O2.5`` is reported with its
    date and column, never dropped). Empty cells, the usual missing-value markers (``NA``, ``NaN``, ``null``,
    ...) and FRED's ``.`` are missing values (NaN), the rows stay: [`log_returns`][bayesvol.datasets.log_returns]
    keeps that calendar (a missing price gives missing returns). Lines that are empty in every cell (blank
    lines, or separators only) are skipped; their line numbers are kept in
    ``result.attrs["blank_lines"]`` so that a caller can report them. Line numbers in messages count every
    line of the file, the header being line 1.

    Parameters
    ----------
    path : str or path-like
        CSV file with a date column and one or more numeric columns.
    column : str or list of str, optional
        Column to return as a Series, or columns to return as a DataFrame (only these columns are checked).
        Without it every column must be numeric and the whole frame is returned.
    date_column : str, optional
        Name of the date column; by default the first column.
    date_format : str, optional
        ``strftime`` format of the dates (e.g. ``"%d/%m/%Y"``); by default pandas infers it from the first
        date. Every date must then match it.
    dayfirst : bool
        Read an ambiguous date such as ``03/04/2020`` as 3 April (day first) rather than 4 March; ignored
        with ``date_format``.

    Raises
    ------
    ValueError
        If the file cannot be read, the date column does not parse or repeats a date, ``column`` is not in
        the file, or a value cell is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"cannot read {str(path)!r}: no such file")
    try:
        # Blank lines are read as empty rows (not skipped by the parser) so that row i is line i + 2 of the file.
        frame = pd.read_csv(path, na_values=["."], skip_blank_lines=False)
    except Exception as err:  # pandas raises several parser error types
        raise ValueError(f"cannot read {str(path)!r} as CSV: {err}") from None
    if frame.shape[1] < 2:
        raise ValueError(f"{str(path)!r} needs a date column and at least one value column")
    # Line numbers of the file (the header is line 1), for messages after the rows are sorted.
    lines = np.arange(2, frame.shape[0] + 2)
    empty = frame.isna().all(axis=1).to_numpy()
    frame, lines, blank_lines = frame.loc[~empty], lines[~empty], [int(line) for line in lines[empty]]
    date_column = date_column or frame.columns[0]
    if date_column not in frame.columns:
        raise ValueError(f"no date column {date_column!r} in {str(path)!r}; columns: {', '.join(frame.columns)}")
    dates = frame.pop(date_column)
    try:
        frame.index = pd.DatetimeIndex(pd.to_datetime(dates, format=date_format, dayfirst=dayfirst), name="date")
    except (ValueError, TypeError) as err:
        fix = ("check the format against the file" if date_format else
               "give their format (date_format, e.g. '%d/%m/%Y'), or dayfirst=True for day/month/year")
        reason = str(err).splitlines()[0].rstrip(". ")  # pandas adds lines of advice that do not apply here
        raise ValueError(f"column {date_column!r} of {str(path)!r} does not hold dates: {reason}; {fix}") from None
    if frame.index.hasnans:
        raise ValueError(f"line {int(lines[frame.index.isna()][0])} of {str(path)!r} has no date in column "
                         f"{date_column!r}; give it one or delete the line")
    if not frame.index.is_unique:
        first = frame.index[frame.index.duplicated()][0]
        raise ValueError(f"date {first:%Y-%m-%d} appears more than once in {str(path)!r} (lines "
                         f"{', '.join(map(str, lines[frame.index == first]))}); keep one line per date")
    order = np.argsort(frame.index.to_numpy(), kind="stable")
    frame, lines = frame.iloc[order], lines[order]
    names = list(frame.columns) if column is None else [column] if isinstance(column, str) else list(column)
    for name in names:
        if name not in frame.columns:
            raise ValueError(f"no column {name!r} in {str(path)!r}; columns: {', '.join(frame.columns)}")
    numeric = pd.DataFrame({name: _numeric_column(frame, name, lines, path, column is None) for name in names},
                           index=frame.index)
    result = numeric[column] if isinstance(column, str) else numeric
    result.attrs["blank_lines"] = blank_lines
    return result


def _numeric_column(frame: pd.DataFrame, name: str, lines: np.ndarray, path: Path, hint: bool) -> pd.Series:
    """Column ``name`` as float64; a cell that is neither a number nor missing is an error naming its date."""
    raw = frame[name]
    values = pd.to_numeric(raw, errors="coerce")
    bad = (values.isna() & raw.notna()).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"column {name!r} of {str(path)!r} is not numeric: {raw.iloc[first]!r} on "
                         f"{frame.index[first]:%Y-%m-%d} (line {int(lines[first])}) is not a number "
                         f"({int(bad.sum())} such cell(s)); correct it, or leave it empty for a missing value"
                         + ("; to read some columns only, choose them (column=..., or --column on the command "
                            "line)" if hint else ""))
    return values.astype(np.float64).rename(name)


_GAPS = ("missing", "multi_day")


def log_returns(prices, scale: float = 100.0, min_length: int = 3, *,
                gaps: str = "missing") -> pd.Series | pd.DataFrame:
    r"""Log returns $r_t = s\,(\log p_t - \log p_{t-1})$ of a price series or frame, on the prices' calendar.

    With ``gaps="missing"`` (default) the rows of ``prices`` are the calendar: $p_{t-1}$ is the price on the
    row before $t$, and a missing price (NaN) gives a missing return on its own date and on the next one.
    The return from the last price before a gap to the first after it spans several dates and is not
    formed; models that support missing values (SV, the GARCH family, DCC, DFSV) treat those dates as
    unobserved steps. Rows before the first and after the last observed return are left out, so a series
    that starts late in a DataFrame has leading NaN while the other series run; in a DataFrame a row on which
    no series has a return (a date quoted by none, such as a US holiday in the H.10 data, and the date after
    it) carries nothing and is dropped as well.

    With ``gaps="multi_day"`` missing prices are dropped first, so each return spans consecutive *observed*
    prices (over a holiday, from the last quote before it); for a DataFrame a date is kept only where every
    column has a price. Those returns never hold NaN (the behaviour of versions before the calendar was
    kept).

    Parameters
    ----------
    prices : pandas.Series, pandas.DataFrame or array_like
        Positive prices in time order, one column per series.
    scale : float
        Multiplier $s$; 100 gives percent returns (the package's convention, never applied silently
        elsewhere).
    min_length : int
        Fewest observed prices accepted (per series, and with ``gaps="multi_day"`` rows where every series
        is observed).
    gaps : {"missing", "multi_day"}
        What a missing price gives: missing returns on its date and the next one (default), or one return
        over the gap from the observed prices on each side of it.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        Returns indexed by the date of their closing price; ``attrs["units"]`` names the scale and, with
        ``gaps="missing"``, ``attrs["num_missing"]`` counts the missing returns (all series together).

    Raises
    ------
    ValueError
        On an unknown ``gaps``, non-positive or infinite prices, or too few observed prices.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> prices = pd.Series([100.0, 101.0, np.nan, 99.0, 98.5])
    >>> log_returns(prices).round(3).tolist()
    [0.995, nan, nan, -0.506]
    >>> log_returns(prices, gaps="multi_day").round(3).tolist()
    [0.995, -2.0, -0.506]
    """
    if gaps not in _GAPS:
        raise ValueError(f"gaps must be 'missing' (a missing price gives missing returns) or 'multi_day' (one "
                         f"return over the gap); got {gaps!r}")
    if not isinstance(prices, (pd.Series, pd.DataFrame)):
        arr = np.asarray(prices, dtype=np.float64)
        if arr.ndim not in (1, 2):
            raise ValueError(f"prices must be 1-D or 2-D; got shape {arr.shape}")
        prices = pd.Series(arr) if arr.ndim == 1 else pd.DataFrame(arr)
    prices = prices.astype(np.float64)
    values = prices.to_numpy()
    if np.isinf(values).any():
        raise ValueError("prices hold inf; remove them before computing returns")
    if (values <= 0).any():
        n_bad = int((values <= 0).sum())
        raise ValueError(f"prices must be positive to take logs; found {n_bad} value(s) <= 0")
    if gaps == "multi_day":
        observed = prices.dropna() if isinstance(prices, pd.Series) else prices.dropna(how="any")
        if observed.shape[0] < min_length:
            raise ValueError(f"only {observed.shape[0]} observed price(s) after dropping missing values; need at "
                             f"least {min_length} (gaps='missing' keeps the rows with a missing price)")
        returns = scale * np.log(observed).diff().iloc[1:]
    else:
        counts = pd.DataFrame(prices).notna().sum()
        if (counts < min_length).any():
            name = counts.index[int(np.argmin(counts.to_numpy()))]
            which = "" if isinstance(prices, pd.Series) else f" in column {name!r}"
            raise ValueError(f"only {int(counts.min())} observed price(s){which}; need at least {min_length}")
        # diff() is NaN wherever the price of the row or of the row before it is missing: the calendar's gaps.
        returns = scale * np.log(prices).diff().iloc[1:]
        observed_rows = returns.notna() if isinstance(returns, pd.Series) else returns.notna().any(axis=1)
        rows = np.flatnonzero(observed_rows.to_numpy())
        if rows.size == 0:
            raise ValueError("no two consecutive rows hold observed prices, so no return can be formed; "
                             "gaps='multi_day' forms returns across the missing prices")
        returns = returns.iloc[rows[0]: rows[-1] + 1]
        if isinstance(returns, pd.DataFrame):
            returns = returns.loc[returns.notna().any(axis=1)]
        returns.attrs["num_missing"] = int(np.isnan(returns.to_numpy()).sum())
    returns.attrs["units"] = "percent log return" if scale == 100 else f"{scale} x log return"
    return returns
