"""The persistent compilation cache: where bayesvol puts it, what leaves it alone, and processes sharing it.

Each check runs in a fresh interpreter (the cache is configured when bayesvol is imported) with its own
temporary directories, never the user's cache.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

REPORT = """
import json, jax, bayesvol
print(json.dumps({"dir": jax.config.jax_compilation_cache_dir,
                  "min_time": jax.config.jax_persistent_cache_min_compile_time_secs}))
"""

# One small compiled likelihood; counts JAX's persistent-cache hits and the warnings raised.
FIT = """
import json, warnings, jax, numpy as np
from jax import monitoring
hits = []
monitoring.register_event_listener(lambda event, **kw: hits.append(event)
                                   if event == "/jax/compilation_cache/cache_hits" else None)
import bayesvol
y = np.random.default_rng(0).standard_normal(200)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    value = float(bayesvol.log_likelihood(bayesvol.models.GARCH(), {"mu": 0.0, "omega": 0.1, "alpha": 0.1,
                                                                    "beta": 0.8}, y))
print(json.dumps({"hits": len(hits), "value": value, "warnings": [str(w.message) for w in caught]}))
"""


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE", "BAYESVOL_CACHE"))}
    env.update({"XDG_CACHE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home"),
                "PYTHONPATH": os.pathsep.join(sys.path)}, **extra)
    return env


def _run(code, env):
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_default_directory_is_under_the_user_cache_and_private(tmp_path):
    out = _run(REPORT, _env(tmp_path))
    expected = tmp_path / "xdg" / "bayesvol" / "jax"
    assert out == {"dir": str(expected), "min_time": 0.0}
    assert stat.S_IMODE(expected.stat().st_mode) == 0o700


def test_settings_of_the_user_are_kept(tmp_path):
    own = str(tmp_path / "own")
    out = _run(REPORT, _env(tmp_path, JAX_COMPILATION_CACHE_DIR=own))
    assert out == {"dir": own, "min_time": 1.0}  # JAX's own defaults, untouched
    assert _run(REPORT, _env(tmp_path, BAYESVOL_CACHE="0"))["dir"] is None
    chosen = tmp_path / "chosen"
    out = _run(REPORT, _env(tmp_path, BAYESVOL_CACHE_DIR=str(chosen), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="3"))
    assert out == {"dir": str(chosen), "min_time": 3.0}
    out = _run("import json, jax, bayesvol\nbayesvol.set_compilation_cache(None)\n"
               "print(json.dumps({'dir': jax.config.jax_compilation_cache_dir}))", _env(tmp_path))
    assert out == {"dir": None}
    assert not (tmp_path / "xdg").exists() or not any((tmp_path / "xdg" / "bayesvol" / "jax").iterdir())


@pytest.mark.slow
def test_two_processes_write_one_cache_that_a_third_reads(tmp_path):
    env = _env(tmp_path, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    writers = [subprocess.Popen([sys.executable, "-c", FIT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env) for _ in range(2)]
    results = []
    for proc in writers:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    entries = list((tmp_path / "xdg" / "bayesvol" / "jax").glob("*-cache"))
    assert entries, "no program was written to the cache"
    reader = _run(FIT, env)
    assert reader["hits"] >= 1
    assert reader["value"] == results[0]["value"] == results[1]["value"]
    # A writer may meet the entry the other is writing (JAX then warns and compiles it itself); the entries
    # left behind are whole: the reader loads them without a warning.
    for message in results[0]["warnings"] + results[1]["warnings"]:
        assert message.startswith("Error reading persistent compilation cache entry"), message
    assert not reader["warnings"], reader["warnings"]
