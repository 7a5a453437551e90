"""Rolling GJR-GARCH(1,1,1) skewed-t VaR backtest on the S&P 500: bayesvol against a loop of arch fits.

The S&P 500 daily percent log returns bundled with ``arch`` (``arch.data.sp500``, adjusted closes 1999-2018);
the last ``--window + --windows`` returns. Every date after the first window is forecast after a refit on
the ``--window`` returns before it (refit every step), and the 1% and 5% VaR of the one-step predictive is
recorded. Timed, each in a fresh process (*cold*: imports done, the first call, with JAX compilation for
bayesvol) and again in the same process (*warm*: the same work repeated, compiled code reused):

* **arch**: a Python loop of ``arch_model(window, mean="Constant", vol="GARCH", p=1, o=1, q=1,
  dist="skewt", rescale=False).fit(disp="off", starting_values=previous)`` and ``forecast(horizon=1)``, as
  an arch user writes it, warm-started from the previous window's estimates;
* **bayesvol, sequential**: ``rolling_forecast(..., refit_every=1)``, each refit warm-started from the
  previous estimate;
* **bayesvol, batch**: ``rolling_forecast(..., batch=True)``: the windows stacked as the columns of a
  ``(window, windows)`` panel and estimated by one batched optimiser (``--batch-size`` windows at a time).

The report gives the times, the arch / bayesvol ratios, the largest absolute difference between the VaR
series (and the differences of the log-likelihoods of each window), the machine and the versions.

Usage::

    python benchmarks/rolling_backtest.py                      # 1000 windows, writes results/rolling_backtest.*
    python benchmarks/rolling_backtest.py --windows 100        # a reduced run, results/rolling_backtest_w100.*
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

LEVELS = (0.01, 0.05)
VARIANTS = ("arch", "sequential", "batch")


def sp500_returns(num: int) -> np.ndarray:
    """The last ``num`` S&P 500 daily percent log returns of ``arch.data.sp500``."""
    from arch.data import sp500

    prices = sp500.load()["Adj Close"].to_numpy(dtype=np.float64)
    returns = 100.0 * np.diff(np.log(prices))
    if num > returns.size:
        raise SystemExit(f"window + windows = {num} exceeds the {returns.size} returns of arch.data.sp500")
    return returns[-num:]


def arch_loop(y: np.ndarray, window: int):
    """VaR per date and log-likelihood per window from a warm-started loop of arch fits."""
    from arch import arch_model

    var, logliks, previous = [], [], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(window, y.size):
            model = arch_model(y[t - window:t], mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="skewt",
                               rescale=False)
            res = model.fit(disp="off", starting_values=previous)
            previous = res.params.to_numpy()
            fc = res.forecast(horizon=1, reindex=False)
            mean, variance = float(fc.mean.to_numpy()[-1, 0]), float(fc.variance.to_numpy()[-1, 0])
            quantiles = model.distribution.ppf(np.asarray(LEVELS), res.params[["eta", "lambda"]].to_numpy())
            var.append(-(mean + np.sqrt(variance) * np.asarray(quantiles)))
            logliks.append(float(res.loglikelihood))
    return np.asarray(var), np.asarray(logliks)


def bayesvol_run(y: np.ndarray, window: int, batch: bool, batch_size: int):
    from bayesvol.models import GARCH
    from bayesvol.rolling import rolling_forecast

    result = rolling_forecast(GARCH(vol="gjr", dist="skewt"), y, window=window, refit_every=1, levels=LEVELS,
                              batch=batch, batch_size=batch_size, progress=False)
    var = result.forecasts[[f"var_{level:g}" for level in LEVELS]].to_numpy()
    return var, result.params["loglik"].to_numpy(), float(result.params["converged"].mean())


def worker(variant: str, windows: int, window: int, batch_size: int) -> dict:
    """The timed part, run in a fresh process: the first (cold) call and a repeat (warm)."""
    start = time.perf_counter()
    if variant == "arch":
        import arch  # noqa: F401

        def call(y):
            var, loglik = arch_loop(y, window)
            return var, loglik, None
    else:
        import bayesvol  # noqa: F401

        def call(y):
            return bayesvol_run(y, window, variant == "batch", batch_size)
    imports = time.perf_counter() - start
    y = sp500_returns(window + windows)
    timings = []
    for _ in range(2):
        cpu, wall = time.process_time(), time.perf_counter()
        var, loglik, converged = call(y)
        timings.append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                        "loadavg_1min": os.getloadavg()[0]})
    return {"variant": variant, "imports_s": imports, "cold": timings[0], "warm": timings[1],
            "var": var.tolist(), "loglik": loglik.tolist(), "converged_share": converged}


def run_worker(variant: str, args) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    command = [sys.executable, __file__, "--worker", variant, "--windows", str(args.windows), "--window",
               str(args.window), "--batch-size", str(args.batch_size)]
    print(f"running {variant} in a fresh process ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: dict) -> dict:
    arch_var, arch_loglik = np.asarray(runs["arch"]["var"]), np.asarray(runs["arch"]["loglik"])
    out = {}
    for variant in ("sequential", "batch"):
        run = runs[variant]
        var, loglik = np.asarray(run["var"]), np.asarray(run["loglik"])
        gain = loglik - arch_loglik
        out[variant] = {
            "cold_ratio": runs["arch"]["cold"]["wall_s"] / run["cold"]["wall_s"],
            "warm_ratio": runs["arch"]["warm"]["wall_s"] / run["warm"]["wall_s"],
            "warm_cpu_ratio": runs["arch"]["warm"]["cpu_s"] / run["warm"]["cpu_s"],
            "max_abs_var_difference": {f"{level:g}": float(np.max(np.abs(var[:, j] - arch_var[:, j])))
                                       for j, level in enumerate(LEVELS)},
            "max_rel_var_difference": {f"{level:g}": float(np.max(np.abs(var[:, j] / arch_var[:, j] - 1.0)))
                                       for j, level in enumerate(LEVELS)},
            "loglik_gain_over_arch": {"min": float(gain.min()), "median": float(np.median(gain)),
                                      "max": float(gain.max()), "windows_worse_by_1e-3": int(np.sum(gain < -1e-3))},
        }
    return out


def render(report: dict) -> str:
    m, runs, s = report["machine"], report["runs"], report["summary"]
    names = {"arch": "arch: loop of `arch_model(...).fit(starting_values=previous)` + `forecast`",
             "sequential": "bayesvol `rolling_forecast`, sequential warm-started refits",
             "batch": f"bayesvol `rolling_forecast(batch=True)`, {report['batch_size']} windows per batched fit"}
    lines = [
        "# Rolling GJR-GARCH(1,1,1) skewed-t VaR backtest on the S&P 500: bayesvol vs arch",
        "",
        f"{report['windows']} windows of {report['window']} daily percent log returns (the S&P 500 of "
        "`arch.data.sp500`, the last window + windows returns up to 2018-12-31), a refit at every date, the 1% and "
        "5% VaR of each one-step predictive. Each variant ran in a fresh process: *cold* is its first call (imports "
        "done; for bayesvol with JAX compilation), *warm* the same work repeated in that process.",
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} cores ({m['cpus_usable']} usable), JAX devices "
        f"{', '.join(m['jax_devices'])}; load average at start {m['loadavg_start'][0]:.2f}, at end "
        f"{report['loadavg_end'][0]:.2f} (other jobs shared the machine: absolute times are noisy, the ratios "
        "less so). Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        "",
        "| | cold s | warm s | warm CPU s | arch / this, cold | arch / this, warm |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        run = runs[variant]
        ratios = ("1", "1") if variant == "arch" else (f"{s[variant]['cold_ratio']:.2f}",
                                                       f"{s[variant]['warm_ratio']:.2f}")
        lines.append(f"| {names[variant]} | {run['cold']['wall_s']:.2f} | {run['warm']['wall_s']:.2f} | "
                     f"{run['warm']['cpu_s']:.2f} | {ratios[0]} | {ratios[1]} |")
    lines += ["", "Agreement with arch:", ""]
    for variant in ("sequential", "batch"):
        d = s[variant]
        var_text = ", ".join(f"{100 * float(level):g}% VaR {d['max_abs_var_difference'][level]:.2e} "
                             f"({d['max_rel_var_difference'][level]:.2e} relative)"
                             for level in d["max_abs_var_difference"])
        g = d["loglik_gain_over_arch"]
        lines.append(f"- {variant}: largest absolute VaR difference {var_text}; log-likelihood minus arch's per "
                     f"window min {g['min']:.2e}, median {g['median']:.2e}, max {g['max']:.2e} "
                     f"({g['windows_worse_by_1e-3']} windows below arch's by more than 1e-3); converged "
                     f"{100 * runs[variant]['converged_share']:.1f}%.")
    lines += ["", "Import times (s): " + ", ".join(f"{v} {runs[v]['imports_s']:.2f}" for v in VARIANTS) + ".",
              "1-minute load after each timed call (cold, warm): " + "; ".join(
                  f"{v} {runs[v]['cold']['loadavg_1min']:.1f}, {runs[v]['warm']['loadavg_1min']:.1f}"
                  for v in VARIANTS) + ".", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=1000, help="forecast dates, one refit each")
    parser.add_argument("--window", type=int, default=1000, help="returns per estimation window")
    parser.add_argument("--batch-size", type=int, default=256, help="windows per batched fit")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.windows, args.window, args.batch_size)))
        return
    from _machine import machine_info

    machine = machine_info(("jax", "jaxlib", "numpyro", "arch", "numpy", "scipy", "pandas"))
    runs = {variant: run_worker(variant, args) for variant in VARIANTS}
    report = {"machine": machine, "windows": args.windows, "window": args.window, "batch_size": args.batch_size,
              "levels": list(LEVELS), "runs": runs, "summary": summarise(runs),
              "loadavg_end": list(os.getloadavg()), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    stem = "rolling_backtest" if args.windows == 1000 and args.window == 1000 else \
        f"rolling_backtest_w{args.windows}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (out / f"{stem}.md").write_text(render(report))
    print(render(report))


if __name__ == "__main__":
    main()
