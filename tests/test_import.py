"""``import bayesvol`` is cheap: nothing heavy is imported and nothing is computed until it is used."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("arviz_base", "arviz_stats", "arviz_plots", "xarray", "matplotlib", "scipy.stats", "scipy.optimize")


def _run(code: str) -> dict:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_import_loads_nothing_heavy_and_starts_no_backend():
    out = _run(f"""
import json, sys
import bayesvol
from jax._src import xla_bridge
print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules],
                  "backend": bool(xla_bridge._backends)}}))
""")
    assert out == {"heavy": [], "backend": False}


def test_no_module_computes_at_import():
    # A module-level jnp array or jitted call would start the JAX backend (and compile) on import.
    out = _run("""
import importlib, json, pkgutil
import bayesvol
from jax._src import xla_bridge
started = None
for info in pkgutil.walk_packages(bayesvol.__path__, "bayesvol."):
    if info.name.endswith(".__main__"):
        continue  # a script entry point (python -m bayesvol.cli) runs when imported, by design
    importlib.import_module(info.name)
    if xla_bridge._backends:
        started = info.name
        break
print(json.dumps({"started": started}))
""")
    assert out == {"started": None}


def test_maximum_likelihood_does_not_import_plotting_or_arviz():
    out = _run("""
import json, sys
import numpy as np
import bayesvol
y = np.random.default_rng(0).standard_normal(300)
fit = bayesvol.fit(bayesvol.models.GARCH(), y)
print(json.dumps({"heavy": [m for m in ("arviz_plots", "matplotlib", "arviz_stats") if m in sys.modules],
                  "loglik": fit.loglik}))
""")
    assert out["heavy"] == []
    assert out["loglik"] < 0


def test_public_names_resolve_on_first_use():
    import bayesvol
    import bayesvol.forecasting  # noqa: F401  (importing the module must not replace the function)

    assert callable(bayesvol.forecast) and bayesvol.forecast is bayesvol.forecasting.forecast
    for name in bayesvol.__all__:
        assert getattr(bayesvol, name) is not None
        assert name in dir(bayesvol)
    with pytest.raises(AttributeError, match="no attribute 'fitt'"):
        bayesvol.fitt  # noqa: B018


def test_all_lists_every_lazy_name():
    import bayesvol

    assert set(bayesvol.__all__) == set(bayesvol._LAZY) | {"ConvergenceWarning", "StationarityWarning",
                                                            "__version__", "set_compilation_cache"}
