"""Time to first result: imports, the first fit with an empty and with a warm compilation cache, and a second
fit at another length, bayesvol against arch, each measured in fresh processes.

Data: S&P 500 daily percent returns from the data set that ships inside ``arch`` (``arch.data.sp500``, no
download), the last T = 5000 of them; the second fit in each process uses the first 4900 (the same length
bucket, 5120, so bayesvol reuses its compiled program). Model: GJR-GARCH(1,1,1), skewed-t innovations,
constant mean (``arch_model(y, o=1, dist="skewt")`` against ``bayesvol.fit(GARCH(vol="gjr", dist="skewt"), y)``).

Processes (each a fresh interpreter, run one after the other):

* ``import jax, numpyro`` alone, ``import bayesvol`` alone and ``from arch import arch_model`` alone;
* arch: the first fit, then the second at 4900;
* bayesvol with an empty compilation cache (a new temporary directory): first fit, then the second at 4900;
* bayesvol again on the cache the previous process filled: first fit, then the second.

The machine may be shared: the load averages before and after are recorded with the timings.

Usage::

    python benchmarks/cold_start.py                 # writes benchmarks/results/cold_start.{json,md}
    python benchmarks/cold_start.py --out /tmp      # elsewhere
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
NUM_STEPS, SECOND_STEPS = 5000, 4900

IMPORT = """
import json, time
start = time.perf_counter()
{statement}
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""

ARCH_FITS = """
import json, time, warnings
import numpy as np
start = time.perf_counter()
from arch import arch_model
imported = time.perf_counter() - start
y = np.load({data!r})
out = {{"import": imported}}
for key, length in (("first_fit", {first}), ("second_fit", {second})):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = arch_model(y[:length], o=1, dist="skewt").fit(disp="off")
    out[key] = time.perf_counter() - start
    out[key + "_loglik"] = float(res.loglikelihood)
print(json.dumps(out))
"""

BAYESVOL_FITS = """
import json, time
import numpy as np
start = time.perf_counter()
import bayesvol
from bayesvol.models import GARCH
imported = time.perf_counter() - start
y = np.load({data!r})
model = GARCH(vol="gjr", dist="skewt")
out = {{"import": imported}}
for key, length in (("first_fit", {first}), ("second_fit", {second})):
    start = time.perf_counter()
    res = bayesvol.fit(model, y[:length])
    out[key] = time.perf_counter() - start
    out[key + "_loglik"] = float(res.loglik)
    out[key + "_converged"] = bool(res.converged)
print(json.dumps(out))
"""


def run_child(code: str, env: dict) -> dict:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=3600)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def sp500_returns() -> np.ndarray:
    """Percent log returns of the adjusted close of ``arch``'s bundled S&P 500 data, the last NUM_STEPS."""
    import arch.data.sp500

    prices = arch.data.sp500.load()["Adj Close"].to_numpy(dtype=np.float64)
    return (100.0 * np.diff(np.log(prices)))[-NUM_STEPS:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    info = machine_info(packages=("jax", "jaxlib", "numpyro", "numpy", "scipy", "arch"))
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "sp500.npy")
        np.save(data, sp500_returns())
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE", "BAYESVOL_CACHE"))}
        env.update(PYTHONPATH=str(ROOT), BAYESVOL_CACHE_DIR=str(Path(tmp) / "cache"))
        fits = dict(data=data, first=NUM_STEPS, second=SECOND_STEPS)
        imports = {name: run_child(IMPORT.format(statement=statement), env)["seconds"]
                   for name, statement in (("jax_numpyro", "import jax, numpyro"), ("bayesvol", "import bayesvol"),
                                           ("arch", "from arch import arch_model"))}
        arch = run_child(ARCH_FITS.format(**fits), env)
        cold = run_child(BAYESVOL_FITS.format(**fits), env)
        entries = len(list((Path(tmp) / "cache").glob("*-cache")))
        warm = run_child(BAYESVOL_FITS.format(**fits), env)
    info["loadavg_end"] = list(os.getloadavg())

    ratios = {
        "import_bayesvol_over_arch": imports["bayesvol"] / imports["arch"],
        "import_bayesvol_over_jax_numpyro": imports["bayesvol"] / imports["jax_numpyro"],
        "first_fit_empty_cache_over_arch": cold["first_fit"] / arch["first_fit"],
        "first_fit_warm_cache_over_arch": warm["first_fit"] / arch["first_fit"],
        "second_fit_over_arch": warm["second_fit"] / arch["second_fit"],
    }
    result = {"benchmark": "cold_start", "data": f"arch.data.sp500, last {NUM_STEPS} percent log returns",
              "model": "GJR-GARCH(1,1,1), skewed t, constant mean", "second_fit_steps": SECOND_STEPS,
              "machine": info, "imports_seconds": imports, "arch": arch, "bayesvol_empty_cache": cold,
              "bayesvol_warm_cache": warm, "cache_entries_written": entries, "ratios": ratios}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cold_start.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "cold_start.md").write_text(report(result))
    print(report(result))


def report(r: dict) -> str:
    m, imp, arch, cold, warm, ratio = (r["machine"], r["imports_seconds"], r["arch"], r["bayesvol_empty_cache"],
                                       r["bayesvol_warm_cache"], r["ratios"])
    lines = [
        "# Time to first result: bayesvol against arch",
        "",
        f"{r['model']} on {r['data']}; each row a fresh process. Machine: {m['cpu_model']}, "
        f"{m['cpus_usable']} usable cores; load average (1, 5, 15 min) {m['loadavg_start']} at the start and "
        f"{m['loadavg_end']} at the end (a shared machine: the timings include waiting for the CPU). "
        f"Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}.",
        "",
        "| step | arch (s) | bayesvol (s) | ratio |",
        "|---|---|---|---|",
        f"| import (`import bayesvol`; `import jax, numpyro`: {imp['jax_numpyro']:.2f} s) | {imp['arch']:.2f} | "
        f"{imp['bayesvol']:.2f} | {ratio['import_bayesvol_over_arch']:.1f} |",
        f"| first fit, empty compilation cache | {arch['first_fit']:.2f} | {cold['first_fit']:.2f} | "
        f"{ratio['first_fit_empty_cache_over_arch']:.1f} |",
        f"| first fit, warm compilation cache | {arch['first_fit']:.2f} | {warm['first_fit']:.2f} | "
        f"{ratio['first_fit_warm_cache_over_arch']:.1f} |",
        f"| second fit, T = {r['second_fit_steps']} (same bucket), same process | {arch['second_fit']:.2f} | "
        f"{warm['second_fit']:.2f} (empty-cache process: {cold['second_fit']:.2f}) | "
        f"{ratio['second_fit_over_arch']:.1f} |",
        "",
        f"Log-likelihoods of the first fit: arch {arch['first_fit_loglik']:.4f}, bayesvol "
        f"{cold['first_fit_loglik']:.4f} (empty cache) and {warm['first_fit_loglik']:.4f} (warm cache). "
        f"The empty-cache process wrote {r['cache_entries_written']} compiled programs.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
