"""Results of a rolling forecast written as it goes, and read back to resume; a progress line.

An output directory holds

``settings.json``
    The settings of the run (model, estimator, windows, levels, a fingerprint of the data). A rerun with
    other settings is refused, naming each difference.
``forecasts.csv``
    One row per forecast date (its position in the data, the refit it comes from, the forecast columns).
``params.csv``
    One row per refit: its estimation window and its estimates.
``state.json``
    The number of completed refits and the sizes of the two tables after them, replaced atomically after
    every completed refit (or batch of refits).
``draws/``
    Simulated predictive returns of posterior runs, one ``.npy`` file per refit.

A refit counts as completed only when its parameter row and all the rows of its forecast dates are on disk;
rows past the recorded sizes (a write cut short) and refits with rows missing are dropped and recomputed.
Numbers are written with 17 significant digits, which reads back the same float64, so a resumed run gives
the same numbers as one that was never interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Progress", "RunStore", "data_fingerprint"]

_FLOAT_FORMAT = "%.17g"


def data_fingerprint(values: np.ndarray, index) -> dict:
    """Length and SHA-256 of the data (values and, when there is one, the index)."""
    digest = hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    if index is not None:
        digest.update(pd.Index(index).astype(str).str.cat(sep="|").encode())
    return {"length": int(values.shape[0]), "sha256": digest.hexdigest()}


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunStore:
    """The output directory of one rolling run (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The directory; created if missing.
    settings : dict
        JSON-serialisable settings of the run; must equal those stored by an earlier run in ``path``.
    """

    def __init__(self, path, settings: dict):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"out={str(path)!r} is a file; give a directory for the results")
        self.path.mkdir(parents=True, exist_ok=True)
        self.settings = json.loads(json.dumps(settings))
        stored = self.path / "settings.json"
        if stored.exists():
            previous = json.loads(stored.read_text())
            differences = [f"{key}: {previous.get(key)!r} there, {self.settings.get(key)!r} here"
                           for key in sorted(set(previous) | set(self.settings))
                           if previous.get(key) != self.settings.get(key)]
            if differences:
                raise ValueError(f"the output directory {str(path)!r} holds a rolling run with other settings ("
                                 + "; ".join(differences) + "); resume with the same settings, or give another "
                                 "directory")
        else:
            _atomic_write(stored, json.dumps(self.settings, indent=2))
        self.forecasts_file = self.path / "forecasts.csv"
        self.params_file = self.path / "params.csv"
        self.state_file = self.path / "state.json"
        self.draws_dir = self.path / "draws"

    # --- reading back ------------------------------------------------------------------------------
    def _read(self, file: Path, size: int | None) -> pd.DataFrame | None:
        if not file.exists() or file.stat().st_size == 0:
            return None
        if size is not None and file.stat().st_size > size:
            with open(file, "r+b") as fh:
                fh.truncate(size)
        try:
            return pd.read_csv(file)
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            return None

    def load(self, block_lengths: list[int]) -> tuple[int, pd.DataFrame | None, pd.DataFrame | None, list]:
        """Completed refits, their forecast rows, their parameter rows and their draws (posterior runs).

        ``block_lengths[r]`` is the number of forecast dates of refit ``r``. Everything after the completed
        refits is removed from the files, so that appending continues the run.
        """
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        forecasts = self._read(self.forecasts_file, state.get("forecasts_bytes"))
        params = self._read(self.params_file, state.get("params_bytes"))
        needs_draws = "draws" in self.settings.get("stored", ())
        completed = 0
        if forecasts is not None and params is not None and {"refit", "position"} <= set(forecasts) \
                and "refit" in params:
            rows = forecasts.dropna(subset=["refit", "position"]).groupby("refit").size()
            have_params = set(params["refit"].dropna().astype(int))
            for r, length in enumerate(block_lengths):
                if r not in have_params or rows.get(r, 0) != length:
                    break
                if needs_draws and not (self.draws_dir / f"{r:06d}.npy").exists():
                    break
                completed = r + 1
        if completed == 0:
            forecasts = params = None
        else:
            forecasts = forecasts[forecasts["refit"] < completed].reset_index(drop=True)
            params = params[params["refit"] < completed].reset_index(drop=True)
        draws = []
        if needs_draws:
            draws = [np.load(self.draws_dir / f"{r:06d}.npy") for r in range(completed)]
        self._rewrite(completed, forecasts, params)
        return completed, forecasts, params, draws

    def _rewrite(self, completed: int, forecasts, params) -> None:
        for file, frame in ((self.forecasts_file, forecasts), (self.params_file, params)):
            if frame is None:
                file.unlink(missing_ok=True)
            else:
                frame.to_csv(file, index=False, float_format=_FLOAT_FORMAT)
        if self.draws_dir.exists():
            for stale in self.draws_dir.glob("*.npy"):
                if int(stale.stem) >= completed:
                    stale.unlink()
        self._write_state(completed)

    def _write_state(self, completed: int) -> None:
        sizes = {name: (file.stat().st_size if file.exists() else 0)
                 for name, file in (("forecasts_bytes", self.forecasts_file), ("params_bytes", self.params_file))}
        _atomic_write(self.state_file, json.dumps({"completed_refits": completed, **sizes}))

    # --- writing ---------------------------------------------------------------------------------
    def append(self, completed: int, forecasts: pd.DataFrame, params: pd.DataFrame, draws=None) -> None:
        """Append the rows of newly completed refits (all refits before ``completed`` are then done)."""
        if draws is not None:
            self.draws_dir.mkdir(exist_ok=True)
            for r, block in draws.items():
                np.save(self.draws_dir / f"{r:06d}.npy", block)
        for file, frame in ((self.forecasts_file, forecasts), (self.params_file, params)):
            header = not file.exists() or file.stat().st_size == 0
            with open(file, "a") as fh:
                frame.to_csv(fh, index=False, header=header, float_format=_FLOAT_FORMAT)
                fh.flush()
                os.fsync(fh.fileno())
        self._write_state(completed)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """A one-line progress report on stderr: windows done, elapsed time and the estimated time left.

    On a terminal the line is rewritten in place (at most a few times a second); elsewhere (a log file, a
    notebook's captured stream) a line is printed about every tenth of the run.
    """

    def __init__(self, total: int, done: int, label: str, enabled: bool = True, stream=None):
        self.total, self.first, self.label = total, done, label
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and total > done
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.last_shown = -np.inf
        self.next_fraction = 0.1
        if self.enabled and done:
            self._write(f"{label}: resuming after {done} of {total} windows", final=False)

    def _write(self, text: str, final: bool) -> None:
        if self.interactive:
            self.stream.write("\r" + text.ljust(78) + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        finished = done >= self.total
        fraction = (done - self.first) / (self.total - self.first)
        if self.interactive and not finished and now - self.last_shown < 0.25:
            return
        if not self.interactive and not finished and fraction < self.next_fraction:
            return
        self.next_fraction = np.floor(fraction * 10.0 + 1e-9) / 10.0 + 0.1
        self.last_shown = now
        elapsed = now - self.start
        eta = elapsed / (done - self.first) * (self.total - done) if done > self.first else float("nan")
        eta_text = _clock(eta) if np.isfinite(eta) else "?"
        self._write(f"{self.label}: {done}/{self.total} windows, elapsed {_clock(elapsed)}, ETA {eta_text}",
                    final=finished)
