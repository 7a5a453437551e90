"""SV log-likelihood by particle filter and EIS: speed against the `particles` package, and Monte Carlo
accuracy per second.

One simulated SV series (normal errors, mu = -1, phi = 0.97, sigma = 0.18, T = 1000) and, in one run:

1. the bootstrap particle filter (systematic resampling when ESS < N/2) of bayesvol and of ``particles``
   (``particles.SMC`` with ``state_space_models.Bootstrap`` of ``StochVol``, same resampling rule) for
   N = 10^3, 10^4, 10^5: seconds per log-likelihood evaluation (bayesvol after compilation; compile time
   recorded separately) and their ratio, with the fraction of steps that resampled;
2. what bounds that ratio: the time to generate the N x T standard normals alone, in NumPy (as ``particles``
   draws them, and with a ``Generator``) and in JAX (threefry and RngBitGenerator keys, float64 and float32);
3. the Monte Carlo SD of the EIS log-likelihood over 40 seeds at S = 8, 32, 128, with and without antithetic
   pairs;
4. the Monte Carlo SD of the log-likelihood against seconds per evaluation, for bayesvol's bootstrap and
   auxiliary particle filters over N and for EIS over the number of draws S (``--reps`` independent seeds
   each), and the time each needs to reach SD <= 0.1: the smallest N or S on the grid that reaches it
   (the bootstrap filter is measured up to N = 20,000; where the largest N misses, N is extrapolated with
   SD ~ N^{-1/2} and time ~ N). Both sides are timed the same way, after compilation, at the same T and
   parameters.

Writes ``filters.json``, ``filters.md`` and ``filters.png`` to ``--out``.

Usage::

    python benchmarks/filters.py                      # about four minutes on a quiet machine
    python benchmarks/filters.py --quick              # smoke check
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import numpy as np
from _machine import machine_info

import bayesvol
from bayesvol.filters import efficient_importance_sampling, particle_filter

PARAMS = {"mu": -1.0, "phi": 0.97, "sigma": 0.18}
# EIS draws S (antithetic pairs count twice); the benchmark takes the smallest that reaches SD <= 0.1.
EIS_DRAWS = [4, 6, 8, 16, 32, 64]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:4.2f}] {msg}", flush=True)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` wall-clock and process-CPU times (seconds). On a shared machine the CPU time is the
    steadier figure: it does not count the time the process waits for a core."""
    best_wall = best_cpu = np.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best_wall, best_cpu


def speed_vs_particles(y, sizes, repeats):
    from particles import SMC
    from particles import state_space_models as ssm

    model = bayesvol.models.SV()
    rows = []
    for num in sizes:
        row = {"N": num}
        for label, random_dtype in (("bayesvol", "float64"), ("bayesvol_f32", "float32")):
            run = jax.jit(lambda key, n=num, d=random_dtype: particle_filter(
                model, PARAMS, y, key, n, ess_threshold=0.5, random_dtype=d).log_likelihood)
            start = time.perf_counter()
            jax.block_until_ready(run(jax.random.PRNGKey(0)))
            row[f"{label}_compile_s"] = time.perf_counter() - start
            row[f"{label}_s"], row[f"{label}_cpu_s"] = timed(lambda run=run: run(jax.random.PRNGKey(1)), repeats)

        def theirs_once(num=num):
            fk = ssm.Bootstrap(ssm=ssm.StochVol(mu=PARAMS["mu"], rho=PARAMS["phi"], sigma=PARAMS["sigma"]), data=y)
            smc = SMC(fk=fk, N=num, resampling="systematic", ESSrmin=0.5)
            smc.run()
            return smc.logLt

        row["particles_s"], row["particles_cpu_s"] = timed(theirs_once, repeats)
        row["resampled_fraction"] = float(particle_filter(model, PARAMS, y, 1, num, ess_threshold=0.5).resampled.mean())
        for label in ("bayesvol", "bayesvol_f32"):
            row[f"{label}_speedup"] = row["particles_s"] / row[f"{label}_s"]
            row[f"{label}_speedup_cpu"] = row["particles_cpu_s"] / row[f"{label}_cpu_s"]
        row["load"] = os.getloadavg()[0]
        rows.append(row)
        log(f"N={num}: bayesvol {row['bayesvol_s']:.4f}s (cpu {row['bayesvol_cpu_s']:.4f}s), float32 normals "
            f"{row['bayesvol_f32_s']:.4f}s (cpu {row['bayesvol_f32_cpu_s']:.4f}s), particles "
            f"{row['particles_s']:.4f}s (cpu {row['particles_cpu_s']:.4f}s), x{row['bayesvol_speedup']:.1f} "
            f"(cpu x{row['bayesvol_speedup_cpu']:.1f})")
    return rows


def normals_floor(sizes, num_steps, repeats):
    """Seconds to generate the N x T standard normals of one filter run, and nothing else: NumPy's legacy
    generator called once per step (what ``particles`` does), NumPy's ``Generator`` likewise, and JAX's
    threefry (the default) and RngBitGenerator (``impl="rbg"``) keys in float64 and float32, drawn in blocks of
    steps as the filter draws them (each block summed so nothing is stored)."""
    from bayesvol.filters.particle import _block_length

    rows = []
    for num in sizes:
        row = {"N": num}
        generator = np.random.default_rng(0)
        row["numpy_legacy_s"], row["numpy_legacy_cpu_s"] = timed(
            lambda n=num: [np.random.normal(size=n) for _ in range(num_steps)], repeats)  # noqa: NPY002
        row["numpy_generator_s"], row["numpy_generator_cpu_s"] = timed(
            lambda n=num, g=generator: [g.standard_normal(n) for _ in range(num_steps)], repeats)
        block = _block_length(num, num_steps)
        num_blocks = -(-num_steps // block)
        for impl in ("threefry2x32", "rbg"):
            for dtype in ("float64", "float32"):
                def total(key, n=num, d=dtype, b=block, nb=num_blocks):
                    draws = jax.lax.map(lambda k: jax.random.normal(k, (b, n), dtype=d).sum(),
                                        jax.random.split(key, nb))
                    return draws.sum()

                run = jax.jit(total)
                key = jax.random.key(0, impl=impl)
                jax.block_until_ready(run(key))
                wall, cpu = timed(lambda run=run, key=key: run(key), repeats)
                # Blocks may overshoot T by less than one block: scale to exactly N x T normals.
                scale = num_steps / (num_blocks * block)
                row[f"jax_{impl}_{dtype}_s"], row[f"jax_{impl}_{dtype}_cpu_s"] = wall * scale, cpu * scale
        row["load"] = os.getloadavg()[0]
        rows.append(row)
        log(f"N={num}: normals alone, numpy legacy {row['numpy_legacy_cpu_s']:.4f}s cpu, jax threefry float64 "
            f"{row['jax_threefry2x32_float64_cpu_s']:.4f}s cpu, float32 {row['jax_threefry2x32_float32_cpu_s']:.4f}s")
    return rows


def eis_antithetic(y, draws, reps):
    """Monte Carlo SD of the EIS log-likelihood over ``reps`` seeds, with and without antithetic pairs."""
    model = bayesvol.models.SV()
    keys = jax.random.split(jax.random.PRNGKey(321), reps)
    rows = []
    for size in draws:
        for antithetic in (True, False):
            run = jax.jit(lambda k, s=size, a=antithetic: efficient_importance_sampling(
                model, PARAMS, y, k, s, antithetic=a).log_likelihood)
            jax.block_until_ready(run(keys[0]))
            start, start_cpu = time.perf_counter(), time.process_time()
            values = np.array([float(run(k)) for k in keys])
            rows.append({"S": size, "antithetic": antithetic, "sd": float(np.std(values, ddof=1)),
                         "mean": float(np.mean(values)), "max_minus_median": float(values.max() - np.median(values)),
                         "seconds": (time.perf_counter() - start) / reps,
                         "cpu_seconds": (time.process_time() - start_cpu) / reps, "load": os.getloadavg()[0]})
            log(f"EIS S={size} antithetic={antithetic}: sd {rows[-1]['sd']:.4f}")
    return rows


def accuracy_vs_time(y, label, make_run, sizes, reps):
    """Monte Carlo SD over ``reps`` seeds and seconds per evaluation (compiled once per size; the compile call
    is excluded from the timing, which covers the ``reps`` evaluations including their dispatch)."""
    rows = []
    keys = jax.random.split(jax.random.PRNGKey(123), reps)
    for size in sizes:
        run = jax.jit(make_run(size))
        jax.block_until_ready(run(keys[0]))
        start, start_cpu = time.perf_counter(), time.process_time()
        values = [float(run(k)) for k in keys]
        seconds = (time.perf_counter() - start) / reps
        cpu_seconds = (time.process_time() - start_cpu) / reps
        rows.append({"method": label, "size": size, "seconds": seconds, "cpu_seconds": cpu_seconds,
                     "sd": float(np.std(values, ddof=1)), "mean": float(np.mean(values)),
                     "load": os.getloadavg()[0]})
        log(f"{label} size={size}: sd {rows[-1]['sd']:.4f}, {seconds:.4f}s per evaluation")
    return rows


def time_to_sd(rows, target=0.1, extrapolate=True, field="seconds"):
    """Seconds per evaluation to reach ``target``: the smallest measured size (N or S) that does, or (particle
    filters) the largest one extrapolated with SD ~ size^{-1/2}, time ~ size."""
    reached = sorted((r for r in rows if r["sd"] <= target), key=lambda r: r["size"])
    if reached:
        return reached[0][field], f"measured at {reached[0]['size']:,}"
    if not extrapolate:
        return None, "not reached"
    last = rows[-1]
    needed = last["size"] * (last["sd"] / target) ** 2
    return last[field] * (last["sd"] / target) ** 2, f"extrapolated from {last['size']:,} to about {needed:,.0f}"


def render(result) -> str:
    m = result["machine"]
    lines = [
        "# SV log-likelihood: particle filter and EIS",
        "",
        f"T = {result['T']}, parameters {result['params']}. Machine: {m['cpu_model']}, {m['cpu_count']} cores, "
        f"load at start {m['loadavg_start'][0]:.2f} (the machine was shared; the load at each measurement is "
        f"listed), JAX {m['versions']['jax']} on {m['jax_devices'][0]}, particles {m['versions']['particles']}.",
        "",
        "## Bootstrap particle filter, seconds per log-likelihood (best of "
        f"{result['repeats']}; wall clock, process CPU in brackets)",
        "",
        "bayesvol with float64 normals (the default) and with `random_dtype=\"float32\"`; speed-ups are "
        "`particles` time over bayesvol time (wall; CPU in brackets). Same rule on both sides: systematic "
        "resampling whenever the ESS falls below N/2 (`particles.SMC(resampling=\"systematic\", ESSrmin=0.5)`, "
        "its default; bayesvol `ess_threshold=0.5`); resampled: fraction of steps that resampled in bayesvol.",
        "",
        "| N | bayesvol | bayesvol float32 | particles | speed-up | speed-up float32 | compile | resampled | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["speed"]:
        lines.append(
            f"| {r['N']:,} | {r['bayesvol_s']:.4f} ({r['bayesvol_cpu_s']:.4f}) | {r['bayesvol_f32_s']:.4f} "
            f"({r['bayesvol_f32_cpu_s']:.4f}) | {r['particles_s']:.4f} ({r['particles_cpu_s']:.4f}) | "
            f"{r['bayesvol_speedup']:.1f}x ({r['bayesvol_speedup_cpu']:.1f}x) | {r['bayesvol_f32_speedup']:.1f}x "
            f"({r['bayesvol_f32_speedup_cpu']:.1f}x) | {r['bayesvol_compile_s']:.1f} s | "
            f"{r['resampled_fraction']:.2f} | {r['load']:.1f} |")
    lines += ["", "### What bounds the speed-up: the normals alone", "",
              f"Process-CPU seconds to generate the N x T = N x {result['T']} standard normals of one run and nothing "
              "else (best of the same repeats). NumPy legacy: `np.random.normal(size=N)` once per step, as "
              "`particles` draws them; NumPy Generator: `default_rng().standard_normal(N)` per step; JAX: "
              "threefry (default keys) or RngBitGenerator (`jax.random.key(seed, impl=\"rbg\")`) in the "
              "filter's blocks of steps. Share: the normals' share of the whole filter's CPU time on the same "
              "side (particles: legacy NumPy; bayesvol: threefry in the same precision).", "",
              "| N | NumPy legacy | NumPy Generator | JAX threefry float64 | JAX threefry float32 | JAX rbg float64 "
              "| JAX rbg float32 | share particles | share bayesvol | share bayesvol float32 | load |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    speed_by_n = {r["N"]: r for r in result["speed"]}

    def bound(r, dtype):
        return speed_by_n[r["N"]]["particles_cpu_s"] / r[f"jax_threefry2x32_{dtype}_cpu_s"]

    for r in result["normals"]:
        sp = speed_by_n[r["N"]]
        lines.append(
            f"| {r['N']:,} | {r['numpy_legacy_cpu_s']:.4f} | {r['numpy_generator_cpu_s']:.4f} | "
            f"{r['jax_threefry2x32_float64_cpu_s']:.4f} | {r['jax_threefry2x32_float32_cpu_s']:.4f} | "
            f"{r['jax_rbg_float64_cpu_s']:.4f} | {r['jax_rbg_float32_cpu_s']:.4f} | "
            f"{r['numpy_legacy_cpu_s'] / sp['particles_cpu_s']:.0%} | "
            f"{r['jax_threefry2x32_float64_cpu_s'] / sp['bayesvol_cpu_s']:.0%} | "
            f"{r['jax_threefry2x32_float32_cpu_s'] / sp['bayesvol_f32_cpu_s']:.0%} | {r['load']:.1f} |")
    lines += ["", "Upper bound on the CPU speed-up if everything but the normals cost nothing on the bayesvol side: "
              "particles CPU time over the JAX normals alone, "
              + ", ".join(f"N = {r['N']:,}: {bound(r, 'float64'):.1f}x (float32 {bound(r, 'float32'):.1f}x)"
                          for r in result["normals"]) + "."]
    lines += ["", f"## Monte Carlo SD of the log-likelihood ({result['reps']} seeds per setting)", "",
              "Seconds per evaluation after compilation (each setting compiled once, then evaluated at "
              f"{result['reps']} seeds). EIS iterations: fixed-point iterations run (mean over the seeds; stopping "
              "rule: no kernel coefficient moves by more than 0.01, at most 10).", "",
              "| method | N or S | SD | seconds per evaluation | CPU seconds | EIS iterations | load |",
              "|---|---|---|---|---|---|---|"]
    for r in result["accuracy"]:
        its = f"{r['mean_iterations']:.1f}" if "mean_iterations" in r else ""
        lines.append(f"| {r['method']} | {r['size']:,} | {r['sd']:.4f} | {r['seconds']:.4f} | {r['cpu_seconds']:.4f} "
                     f"| {its} | {r['load']:.1f} |")
    lines += ["", f"### EIS with and without antithetic draws ({result['eis_antithetic_reps']} seeds per setting)", "",
              "S draws in all (antithetic: S/2 pairs (z, -z) of the common random numbers). max - median: "
              "distance of the largest of the seeds' estimates from their median (the right tail).", "",
              "| S | antithetic | SD | max - median | mean | CPU seconds per evaluation | load |",
              "|---|---|---|---|---|---|---|"]
    for r in result["eis_antithetic"]:
        lines.append(f"| {r['S']} | {'yes' if r['antithetic'] else 'no'} | {r['sd']:.4f} | "
                     f"{r['max_minus_median']:.3f} | {r['mean']:.3f} | {r['cpu_seconds']:.4f} | {r['load']:.1f} |")
    lines += ["", "## Time to reach SD <= 0.1", "", "| method | seconds | CPU seconds | how |", "|---|---|---|---|"]
    for label, (seconds, how) in result["time_to_sd"].items():
        cpu = result["time_to_sd_cpu"][label][0]
        lines.append(f"| {label} | {seconds:.4f} | {cpu:.4f} | {how} |")
    lines += ["", f"EIS reaches SD <= 0.1 {result['eis_advantage']:.0f}x faster than the bootstrap particle filter "
              f"({result['eis_advantage_cpu']:.0f}x in CPU time) and {result['eis_advantage_auxiliary']:.0f}x "
              "faster than the auxiliary one.", ""]
    return "\n".join(lines)


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    speed = result["speed"]
    left.loglog([r["N"] for r in speed], [r["bayesvol_s"] for r in speed], "o-", label="bayesvol (JAX)")
    left.loglog([r["N"] for r in speed], [r["bayesvol_f32_s"] for r in speed], "^--",
                label="bayesvol, float32 normals")
    left.loglog([r["N"] for r in speed], [r["particles_s"] for r in speed], "s-", label="particles")
    left.set_xlabel("particles N")
    left.set_ylabel("seconds per log-likelihood")
    left.set_title(f"Bootstrap PF, SV, T = {result['T']}")
    left.legend()
    for i, label in enumerate(sorted({r["method"] for r in result["accuracy"]})):
        rows = [r for r in result["accuracy"] if r["method"] == label]
        right.loglog([r["seconds"] for r in rows], [r["sd"] for r in rows], "o-", color=f"C{i}", label=label)
    right.axhline(0.1, color="grey", ls="--", lw=1)
    right.set_xlabel("seconds per log-likelihood")
    right.set_ylabel("Monte Carlo SD of log-likelihood")
    right.set_title("Accuracy against time")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    sizes = [1000, 10_000, 100_000] if not args.quick else [1000, 10_000]
    reps = args.reps if not args.quick else 5
    model = bayesvol.models.SV()
    y = np.asarray(bayesvol.simulate(model, PARAMS, args.T, seed=2024).y)
    result = {"T": args.T, "params": PARAMS, "reps": reps, "repeats": args.repeats,
              "machine": machine_info(("jax", "jaxlib", "numpyro", "particles", "numpy"))}
    log("particle filter speed against particles")
    result["speed"] = speed_vs_particles(y, sizes, args.repeats)
    log("the normals alone")
    result["normals"] = normals_floor(sizes, args.T, args.repeats)
    log("EIS with and without antithetic draws")
    result["eis_antithetic_reps"] = 40 if not args.quick else 5
    result["eis_antithetic"] = eis_antithetic(y, [8, 32, 128] if not args.quick else [8], result["eis_antithetic_reps"])
    log("Monte Carlo SD against time")
    pf_sizes = [250, 1000, 4000] if not args.quick else [250, 1000]
    accuracy = accuracy_vs_time(
        y, "PF bootstrap", lambda n: lambda k: particle_filter(model, PARAMS, y, k, n, ess_threshold=0.5)
        .log_likelihood, pf_sizes + ([20_000] if not args.quick else []), reps)
    accuracy += accuracy_vs_time(
        y, "PF auxiliary", lambda n: lambda k: particle_filter(model, PARAMS, y, k, n, proposal="auxiliary",
                                                               ess_threshold=0.5).log_likelihood, pf_sizes, reps)
    accuracy += accuracy_vs_time(
        y, "EIS", lambda s: lambda k: efficient_importance_sampling(model, PARAMS, y, k, s).log_likelihood,
        EIS_DRAWS if not args.quick else [8, 32], reps)
    iterations = jax.jit(lambda k, s: efficient_importance_sampling(model, PARAMS, y, k, s).num_iterations,
                         static_argnums=1)
    keys = jax.random.split(jax.random.PRNGKey(123), reps)
    for row in accuracy:
        if row["method"] == "EIS":
            row["mean_iterations"] = float(np.mean([int(iterations(k, row["size"])) for k in keys]))
    result["accuracy"] = accuracy
    by_method = {label: time_to_sd([r for r in accuracy if r["method"] == label], extrapolate=label != "EIS")
                 for label in ("PF bootstrap", "PF auxiliary", "EIS")}
    result["time_to_sd"] = by_method
    result["time_to_sd_cpu"] = {
        label: time_to_sd([r for r in accuracy if r["method"] == label], extrapolate=label != "EIS",
                          field="cpu_seconds") for label in ("PF bootstrap", "PF auxiliary", "EIS")}
    result["eis_advantage_cpu"] = result["time_to_sd_cpu"]["PF bootstrap"][0] / result["time_to_sd_cpu"]["EIS"][0]
    result["eis_advantage"] = by_method["PF bootstrap"][0] / by_method["EIS"][0]
    result["eis_advantage_auxiliary"] = by_method["PF auxiliary"][0] / by_method["EIS"][0]
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "filters.json").write_text(json.dumps(result, indent=2))
    (args.out / "filters.md").write_text(render(result))
    plot(result, args.out / "filters.png")
    log(f"wrote {args.out / 'filters.json'}, .md, .png")
    print(render(result))


if __name__ == "__main__":
    main()
