"""Reading the command line's data: a bundled data set or a CSV, turned into returns, with what was dropped.

Every row that does not reach the model is accounted for in `Returns.notes` (blank lines, dates
outside ``--start``/``--end``, missing values), which the command prints; every value that cannot be used
(a typo in a number, a negative price) is an error naming the column and the date. A model that supports
missing values gets the data's calendar, with a missing price giving missing returns (NaN); any other model
gets the rows where every value is observed, each return spanning a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import bayesvol.datasets as datasets

__all__ = ["Returns", "load_returns"]

# Bundled data sets that hold returns already; the others hold prices.
_BUNDLED_RETURNS = ("gbpusd",)


@dataclass
class Returns:
    """Returns ready for a model: a Series (one series) or a DataFrame (one column per series)."""

    values: pd.Series | pd.DataFrame
    label: str
    notes: list = field(default_factory=list)


def _lines(numbers: list[int], most: int = 5) -> str:
    shown = ", ".join(map(str, numbers[:most]))
    return shown + (f" and {len(numbers) - most} more" if len(numbers) > most else "")


def _bundled(args, multivariate: bool):
    source, columns = args.data, args.column
    for flag, value in (("--date-format", args.date_format), ("--dayfirst", args.dayfirst)):
        if value:
            raise ValueError(f"{flag} applies to CSV files; the bundled data set {source!r} has parsed dates")
    data = datasets.load(source)
    if isinstance(data, pd.Series):
        if multivariate:
            raise ValueError(f"{source!r} holds one series; this model needs several (a CSV with one column per "
                             "series, or fred_h10 with several --column)")
        if columns and columns != [data.name]:
            raise ValueError(f"{source!r} holds one series ({data.name!r}) and has no columns to choose; "
                             "drop --column")
        return data, source, source in _BUNDLED_RETURNS
    if args.returns:
        raise ValueError(f"--returns does not apply to {source!r}: it holds prices, which are turned into "
                         "percent log returns; drop --returns")
    if not columns:
        need = "two or more" if multivariate else "one"
        raise ValueError(f"--column is required for {source!r}; choose {need} of: {', '.join(data.columns)}")
    missing = [name for name in columns if name not in data.columns]
    if missing:
        raise ValueError(f"no column {missing[0]!r} in {source!r}; columns: {', '.join(data.columns)}")
    selected = data[columns] if multivariate else data[columns[0]]
    return selected, f"{source}:{','.join(columns)}", False


def _csv(args, multivariate: bool, notes: list):
    source, columns = args.data, args.column
    if not (source.endswith(".csv") or Path(source).exists()):
        raise ValueError(f"--data {source!r} is neither a bundled data set ({', '.join(datasets.available())}) "
                         "nor an existing CSV file")
    options = {"date_format": args.date_format, "dayfirst": args.dayfirst}
    if multivariate or not columns:
        data = datasets.load_csv(source, column=columns or None, **options)
        if isinstance(data, pd.DataFrame) and not multivariate:
            if data.shape[1] != 1:
                raise ValueError(f"{source!r} has several columns; choose one with --column "
                                 f"({', '.join(data.columns)})")
            data = data.iloc[:, 0]
    else:
        data = datasets.load_csv(source, column=columns[0], **options)
    blank = data.attrs.get("blank_lines", [])
    if blank:
        notes.append(f"skipped {len(blank)} blank line(s) of {Path(source).name} (line {_lines(blank)})")
    names = list(data.columns) if isinstance(data, pd.DataFrame) else [data.name]
    return data, f"{Path(source).name}:{','.join(map(str, names))}", args.returns


def _check_prices(data, source: str) -> None:
    """Refuse a non-positive 'price', saying when the column looks like returns."""
    frame = pd.DataFrame(data)
    for name in frame.columns:
        column = frame[name].dropna()
        negative, zero = column[column < 0], column[column == 0]
        if len(negative):
            raise ValueError(f"column {name!r} of {source} has {len(negative)} negative value(s) (the first "
                             f"{negative.iloc[0]:g} on {negative.index[0]:%Y-%m-%d}): it looks like returns, not "
                             "prices; pass --returns")
        if len(zero):
            raise ValueError(f"column {name!r} of {source} has {len(zero)} zero value(s) (the first on "
                             f"{zero.index[0]:%Y-%m-%d}): prices must be positive to take log returns; pass "
                             "--returns if the column holds returns")


def load_returns(args, multivariate: bool, supports_missing: bool = False) -> Returns:
    """The returns that ``bayesvol fit`` models, from ``--data``, ``--column``, ``--returns`` and the dates.

    For a model that supports missing values (``supports_missing``) the calendar of the data is kept: a
    missing price gives a missing return (NaN) on its date and the next one, a missing return stays missing,
    and a series that starts late in a panel is missing until it starts. For any other model the rows with a
    missing value are dropped and each return spans the gap (``datasets.log_returns(..., gaps="multi_day")``).
    Either way a note says what was done and how many values it concerns.
    """
    columns = args.column or []
    if len(columns) != len(set(columns)):
        raise ValueError(f"--column names a series twice ({', '.join(columns)})")
    if not multivariate and len(columns) > 1:
        raise ValueError(f"--model {args.model} models one series; got {len(columns)} --column "
                         f"({', '.join(columns)}); choose one")
    if multivariate and len(columns) == 1:
        raise ValueError(f"--model {args.model} models several series; give two or more --column, or none for "
                         "every column of a CSV")
    notes: list[str] = []
    bundled = args.data in datasets.available()
    data, label, is_returns = _bundled(args, multivariate) if bundled else _csv(args, multivariate, notes)
    rows = data.shape[0]
    data = date_range(data, args.start, args.end, label)
    if data.shape[0] < rows:
        notes.append(f"dropped {rows - data.shape[0]} row(s) outside --start/--end (kept {data.shape[0]} of {rows})")
    if not is_returns:
        _check_prices(data, Path(args.data).name)
    if supports_missing:
        values = _keep_calendar(data, is_returns, label, notes)
    else:
        values = _drop_missing(data, is_returns, args.model, notes)
    if is_returns:
        observed = np.asarray(values)[~np.isnan(np.asarray(values))]
        if not bundled and observed.size and bool((observed > 0).all()):
            notes.append(f"every value of {label} is positive (mean {float(np.mean(observed)):.4g}): "
                         "returns take both signs; if the column holds prices, drop --returns")
    if isinstance(values, pd.Series):
        values = values.rename("y")
    return Returns(values, label, notes)


def _drop_missing(data, is_returns: bool, model: str, notes: list):
    """Returns without NaN, for a model that does not take missing values: rows with a missing value go."""
    missing = int(np.asarray(pd.DataFrame(data).isna().any(axis=1)).sum())
    if is_returns:
        values = data.dropna() if isinstance(data, pd.Series) else data.dropna(how="any")
    else:
        values = datasets.log_returns(data, gaps="multi_day")
    if missing:
        where = "a series has no value" if isinstance(data, pd.DataFrame) else "the value is missing"
        span = "" if is_returns else "; each return spans the gap"
        notes.append(f"dropped {missing} row(s) where {where} (empty cell or NA; holidays in price series): "
                     f"--model {model} does not support missing returns{span}")
    if not is_returns:
        notes.append(f"turned {values.shape[0] + 1} prices into {values.shape[0]} percent log returns "
                     "(100 x difference of log prices; pass --returns if the column holds returns)")
    return values


def _keep_calendar(data, is_returns: bool, label: str, notes: list):
    """Returns on the data's calendar with NaN where a value is missing, for a model that supports it."""
    panel = isinstance(data, pd.DataFrame)
    if is_returns:
        observed = (data.notna().any(axis=1) if panel else data.notna()).to_numpy()
        if not observed.any():
            raise ValueError(f"{label} holds no observed return")
        # Only rows with nothing observed at all are left out: leading and trailing ones for one series (they
        # would only lengthen the path), any such row for a panel (no asset has data on that date).
        position, first, last = np.arange(observed.size), *np.flatnonzero(observed)[[0, -1]]
        keep = observed.copy() if panel else (position >= first) & (position <= last)
        values = data.loc[keep]
        if not keep.all():
            notes.append(f"left out {int((~keep).sum())} row(s) on which no return is observed")
    else:
        values = datasets.log_returns(data, gaps="missing")
        left_out = data.shape[0] - 1 - values.shape[0]
        notes.append(f"turned {data.shape[0]} prices into {values.shape[0]} percent log returns on their "
                     "calendar (100 x difference of log prices; pass --returns if the column holds returns)")
        if left_out:
            notes.append(f"left out {left_out} date(s) on which no return can be formed (before the first price, "
                         "after the last" + (", or on and after a date with no price in any series)" if panel else
                                             ")"))
    missing = int(np.isnan(np.asarray(values, dtype=np.float64)).sum())
    if missing:
        cause = ("a missing value is a missing return" if is_returns else
                 "a missing price gives a missing return on its date and the next; no return spans a gap")
        where = " (a series that starts late is missing until it starts)" if panel else ""
        notes.append(f"kept {missing} missing return(s) as NaN{where}: {cause}; the model treats them as "
                     "unobserved")
    return values


def date_range(data, start, end, label):
    """The rows from ``--start`` to ``--end``, with errors that say why a range is empty."""
    bounds = {}
    for flag, text in (("--start", start), ("--end", end)):
        if text:
            try:
                bounds[flag] = pd.Timestamp(text)
            except (ValueError, TypeError):
                raise ValueError(f"{flag} {text!r} is not a date; write it as YYYY-MM-DD") from None
    if data.shape[0] == 0:
        raise ValueError(f"{label} holds no rows")
    first, last = data.index[0], data.index[-1]
    if "--start" in bounds and bounds["--start"] > last:
        raise ValueError(f"--start {start} is after the last date of {label} ({last:%Y-%m-%d}); choose an earlier "
                         f"start (the data run from {first:%Y-%m-%d})")
    if "--end" in bounds and bounds["--end"] < first:
        raise ValueError(f"--end {end} is before the first date of {label} ({first:%Y-%m-%d}); choose a later end "
                         f"(the data run to {last:%Y-%m-%d})")
    if len(bounds) == 2 and bounds["--start"] > bounds["--end"]:
        raise ValueError(f"--start {start} is after --end {end}")
    return data.loc[bounds.get("--start"): bounds.get("--end")] if bounds else data
