"""Numerical set-up applied once when bayesvol is imported.

* float64 everywhere: maximum likelihood, standard errors and long latent paths need it, and mixing
  precisions between the simulator, the likelihood and the NumPyro program would break the promise that
  they share one implementation.
* On CPU, expose one XLA host device per core so NUTS chains run in parallel. This only takes effect if
  JAX has not started its backend yet; set ``XLA_FLAGS`` yourself to override.
* JAX's persistent compilation cache in a per-user cache directory, so that a new process loads the
  programs an earlier one compiled instead of compiling them again (see
  [`set_compilation_cache`][bayesvol.set_compilation_cache]). Only configuration values are set here; JAX opens the
  directory when it first compiles.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    _cores = max(1, min(os.cpu_count() or 1, 8))
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_cores}"
    ).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

__all__ = ["default_cache_dir", "set_compilation_cache"]

# Every compiled program is stored (JAX's default stores those that took 1 s or more): a fit also compiles
# about sixty small programs, and on a loaded 2-core machine loading them too cut a warm first fit of
# GJR skewed-t from 16.3 s to 12.9 s (benchmarks/cold_start.py; docs/performance.md).
_MIN_COMPILE_SECONDS = 0.0
_OFF = ("0", "false", "no", "off")


def default_cache_dir() -> Path:
    """The directory of bayesvol's compilation cache: ``$BAYESVOL_CACHE_DIR`` if set, else ``bayesvol/jax``
    under the user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on
    macOS, ``%LOCALAPPDATA%`` on Windows)."""
    if os.environ.get("BAYESVOL_CACHE_DIR"):
        return Path(os.environ["BAYESVOL_CACHE_DIR"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bayesvol" / "jax"


def set_compilation_cache(path: str | os.PathLike | None = "default") -> Path | None:
    """Turn JAX's persistent compilation cache on in ``path``, or off with ``None``.

    Compiled programs (the likelihood, its gradient and Hessian, the samplers) are written there and read back
    by later processes, which then skip compiling them. bayesvol turns the cache on when it is imported, in
    `default_cache_dir`, unless the environment variable ``BAYESVOL_CACHE`` is ``0`` (or ``false``,
    ``no``, ``off``) or a cache directory of JAX's own is set (``JAX_COMPILATION_CACHE_DIR`` or
    ``jax.config.update("jax_compilation_cache_dir", ...)`` before the import), which it leaves as it is.
    Several processes may share the directory (each entry is one file, written once; a reader that meets a
    partly written entry compiles the program instead, with JAX's warning).

    The cache holds executable code: keep it in a directory only you can write to. The directory is created
    (readable by its owner only) if absent.

    Parameters
    ----------
    path : str, path or None
        The directory; ``"default"`` for `default_cache_dir`; ``None`` turns the cache off for the rest
        of the process.

    Returns
    -------
    pathlib.Path or None
        The directory in use.
    """
    from jax.experimental.compilation_cache import compilation_cache

    if path is None:
        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()
        return None
    directory = default_cache_dir() if isinstance(path, str) and path == "default" else Path(path).expanduser()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
    compilation_cache.reset_cache()  # a cache opened earlier in this process moves to the new directory
    return directory


def _cache_on_import() -> None:
    """The default cache, unless switched off or configured through JAX (left untouched then)."""
    if os.environ.get("BAYESVOL_CACHE", "").strip().lower() in _OFF:
        return
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir is not None:
        return
    directory = default_cache_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        warnings.warn(f"bayesvol could not create its compilation cache directory {str(directory)!r} ({err}); "
                      "programs will be compiled in every process. Set BAYESVOL_CACHE_DIR to a writable "
                      "directory, or BAYESVOL_CACHE=0 to turn the cache off", RuntimeWarning, stacklevel=2)
        return
    jax.config.update("jax_compilation_cache_dir", str(directory))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)


_cache_on_import()
