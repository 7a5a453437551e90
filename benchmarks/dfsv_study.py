"""DFSV simulation study: Bellman filter vs Rao-Blackwellised particle filter.

For each (N, K) of the grid, simulate T observations from a DFSV model, run each filter at the true
parameters and record the RMSE and correlation of the filtered factors and factor log-variances against the
truth, the log-likelihood and the time per filter pass (after compilation; median of repeated passes).
Optionally (``--nuts``) run NUTS on one data set and report the minimum bulk ESS per second over the
parameters, and (``--mle N:K ...``) fit Bellman-filter maximum likelihood on simulated data and record the
estimates, standard errors, z-scores against the truth, the joint Wald statistic and the fit time.
Results go to ``benchmarks/results/dfsv_study.json`` and ``.md`` with machine information.

There is no peer package for this model (factorstochvol has independent factors and log-variances and no
Bellman filter), so the comparison is between the package's two estimators.

Usage::

    python benchmarks/dfsv_study.py                       # the full grid (N 5, 10, 50; K 1, 2, 3, 5)
    python benchmarks/dfsv_study.py --assets 5 50 --factors 1 3 --particles 1000
    python benchmarks/dfsv_study.py --nuts --nuts-timesteps 1000
    python benchmarks/dfsv_study.py --skip-filters --mle 5:1 10:2 --stem dfsv_mle
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import arviz_stats
import jax
import numpy as np
import scipy.stats

import bayesvol
from bayesvol.filters import dfsv_methods as filters
from bayesvol.models import DFSV
from bayesvol.models._base import as_params

RESULTS = Path(__file__).parent / "results"


def true_params(num_assets: int, num_factors: int, seed: int = 0) -> dict:
    """Parameters of the study: loadings around 0.7, mildly persistent factors, persistent log-variances."""
    rng = np.random.default_rng(seed)
    k, n = num_factors, num_assets
    lam = rng.normal(0.7, 0.3, (n, k))
    lam[:k, :k] = np.tril(lam[:k, :k], -1) + np.eye(k)
    return {"lambda_r": lam, "Phi_f": 0.2 * np.eye(k), "Phi_h": 0.95 * np.eye(k), "mu": np.full(k, -0.5),
            "Q_h": 0.05 * (0.7 * np.eye(k) + 0.3), "sigma2": rng.uniform(0.2, 0.5, n)}


def _score(estimate, truth) -> dict:
    rmse = float(np.sqrt(np.mean((estimate - truth) ** 2)))
    corr = float(np.mean([np.corrcoef(estimate[:, j], truth[:, j])[0, 1] for j in range(truth.shape[1])]))
    return {"rmse": rmse, "corr": corr}


def _time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())                      # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_filters(num_assets: int, num_factors: int, num_timesteps: int, particles: list[int], repeats: int) -> list:
    model = DFSV(num_factors=num_factors)
    truth = true_params(num_assets, num_factors)
    sim = bayesvol.simulate(model, truth, num_timesteps, seed=1)
    params = as_params(model, truth)
    y = jax.numpy.asarray(sim.y)
    rows = []
    out = filters._bellman_jit(model, params, y, 8)
    seconds = _time(lambda: filters._bellman_jit(model, params, y, 8).pointwise_log_likelihood, repeats)
    k = num_factors
    rows.append({"N": num_assets, "K": k, "T": num_timesteps, "filter": "bellman", "particles": None,
                 "seconds_per_pass": seconds, "loglik": float(out.log_likelihood),
                 "f": _score(np.asarray(out.filtered_mean[:, :k]), sim.f),
                 "h": _score(np.asarray(out.filtered_mean[:, k:2 * k]), sim.h)})
    for num in particles:
        key = jax.random.PRNGKey(0)
        out = filters._particle_jit(model, params, y, key, num, 0.5, False)
        seconds = _time(lambda num=num, key=key: filters._particle_jit(
            model, params, y, key, num, 0.5, False).pointwise_log_likelihood, repeats)
        rows.append({"N": num_assets, "K": k, "T": num_timesteps, "filter": "pf", "particles": num,
                     "seconds_per_pass": seconds, "loglik": float(out.log_likelihood),
                     "f": _score(np.asarray(out.filtered_mean[:, :k]), sim.f),
                     "h": _score(np.asarray(out.filtered_mean[:, k:2 * k]), sim.h)})
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def run_nuts(num_assets: int, num_factors: int, num_timesteps: int, num_warmup: int, num_samples: int,
             num_chains: int) -> dict:
    model = DFSV(num_factors=num_factors)
    truth = true_params(num_assets, num_factors)
    sim = bayesvol.simulate(model, truth, num_timesteps, seed=2)
    start = time.perf_counter()
    idata = bayesvol.sample(model, sim.y, num_chains=num_chains, num_warmup=num_warmup, num_samples=num_samples,
                            seed=0, progress_bar=False, warn=False)
    seconds = time.perf_counter() - start
    names = [n for n in model.param_names]
    ess = arviz_stats.ess(idata, var_names=names, method="bulk")
    min_ess = float(min(float(ess[n].min()) for n in names))
    h_mean = idata.posterior["h"].mean(("chain", "draw")).values
    recovery = {}
    for name in names:
        draws = idata.posterior[name].values.reshape(-1, *np.shape(truth[name]))
        low, high = np.quantile(draws, [0.025, 0.975], axis=0)
        fixed = low == high
        inside = ((low <= truth[name]) & (truth[name] <= high)) | fixed
        recovery[name] = {"coverage_95": float(inside[~fixed].mean()) if (~fixed).any() else None,
                          "posterior_mean": np.asarray(draws.mean(0)).round(3).tolist(),
                          "truth": np.asarray(truth[name]).round(3).tolist()}
    return {"N": num_assets, "K": num_factors, "T": num_timesteps, "chains": num_chains, "warmup": num_warmup,
            "samples": num_samples, "seconds_total": seconds, "min_bulk_ess": min_ess,
            "min_bulk_ess_per_second": min_ess / seconds,
            "divergences": int(idata.sample_stats["diverging"].sum()), "h": _score(h_mean, sim.h),
            "recovery": recovery}


def run_mle(num_assets: int, num_factors: int, num_timesteps: int) -> dict:
    """Bellman-filter MLE on one simulated data set: recovery of every free parameter and a joint Wald test."""
    model = DFSV(num_factors=num_factors)
    truth = true_params(num_assets, num_factors)
    sim = bayesvol.simulate(model, truth, num_timesteps, seed=3)
    start = time.perf_counter()
    res = bayesvol.fit(model, sim.y, method="bellman", num_starts=1, warn=False)
    seconds = time.perf_counter() - start
    est = np.concatenate([np.ravel(res.params[n]) for n in model.param_names])
    true = np.concatenate([np.ravel(truth[n]) for n in model.param_names])
    se = np.concatenate([np.ravel(res.se[n]) for n in model.param_names])
    free = se > 0
    diff = (est - true)[free]
    # Symmetric matrices (Q_h) list each off-diagonal entry twice, so the covariance of the listed entries is
    # singular; the Wald statistic uses its pseudo-inverse with degrees of freedom equal to its rank.
    cov = res.cov[np.ix_(free, free)]
    wald = float(diff @ np.linalg.pinv(cov, hermitian=True) @ diff)
    dof = int(np.linalg.matrix_rank(cov, hermitian=True))
    z = np.abs(diff / se[free])
    per_param = {n: {"estimate": np.round(np.asarray(res.params[n], float), 3).tolist(),
                     "se": np.round(np.asarray(res.se[n], float), 3).tolist(),
                     "truth": np.round(np.asarray(truth[n], float), 3).tolist()} for n in model.param_names}
    return {"N": num_assets, "K": num_factors, "T": num_timesteps, "seconds": seconds,
            "converged": bool(res.converged), "num_free_params": dof, "max_abs_z": float(z.max()),
            "share_abs_z_below_1.96": float(np.mean(z < 1.96)), "wald": wald,
            "wald_p_value": float(scipy.stats.chi2(dof).sf(wald)), "params": per_param}


def machine() -> dict:
    import numpyro

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_average_before": os.getloadavg(), "python": platform.python_version(), "jax": jax.__version__,
            "numpyro": numpyro.__version__, "bayesvol": bayesvol.__version__, "device": str(jax.devices()[0])}


def write(results: dict, stem: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2))
    lines = [f"# DFSV simulation study ({stem})", "", "Machine: " + ", ".join(f"{k} {v}" for k, v in
                                                                          results["machine"].items()), "",
             f"Load average after the run: {results['load_average_after']}", "", results["note"], "",
             "| N | K | T | filter | particles | s / pass | loglik | RMSE f | corr f | RMSE h | corr h |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["filters"]:
        lines.append(f"| {r['N']} | {r['K']} | {r['T']} | {r['filter']} | {r['particles'] or ''} | "
                     f"{r['seconds_per_pass']:.3f} | {r['loglik']:.1f} | {r['f']['rmse']:.3f} | {r['f']['corr']:.3f} "
                     f"| {r['h']['rmse']:.3f} | {r['h']['corr']:.3f} |")
    ratios = []
    for r in results["filters"]:
        if r["filter"] == "pf":
            b = next(x for x in results["filters"] if x["filter"] == "bellman" and (x["N"], x["K"]) == (r["N"], r["K"]))
            ratio = r["seconds_per_pass"] / b["seconds_per_pass"]
            ratios.append(f"| {r['N']} | {r['K']} | {r['particles']} | {ratio:.1f} | {r['loglik'] - b['loglik']:.2f} |")
    if ratios:
        lines += ["", "Particle filter against the Bellman filter (time ratio; log-likelihood PF minus Bellman):", "",
                  "| N | K | particles | time PF / Bellman | loglik PF - Bellman |", "|---|---|---|---|---|"] + ratios
    if results.get("mle"):
        lines += ["", "## Bellman-filter MLE on simulated data", "",
                  "| N | K | T | free params | seconds | converged | max abs z | share abs z < 1.96 | Wald | p-value |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["mle"]:
            lines.append(f"| {r['N']} | {r['K']} | {r['T']} | {r['num_free_params']} | {r['seconds']:.1f} | "
                         f"{r['converged']} | {r['max_abs_z']:.2f} | {r['share_abs_z_below_1.96']:.2f} | "
                         f"{r['wald']:.1f} | {r['wald_p_value']:.3f} |")
    if results.get("nuts"):
        nuts = results["nuts"]
        lines += ["", "## NUTS", "", "```", json.dumps(nuts, indent=1), "```"]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, nargs="+", default=[5, 10, 50])
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--particles", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nuts", action="store_true")
    parser.add_argument("--nuts-assets", type=int, default=10)
    parser.add_argument("--nuts-factors", type=int, default=2)
    parser.add_argument("--nuts-timesteps", type=int, default=1000)
    parser.add_argument("--nuts-chains", type=int, default=2)
    parser.add_argument("--nuts-warmup", type=int, default=500)
    parser.add_argument("--nuts-samples", type=int, default=500)
    parser.add_argument("--skip-filters", action="store_true")
    parser.add_argument("--mle", nargs="*", default=[], metavar="N:K",
                        help="Bellman-filter MLE recovery on simulated data for these sizes")
    parser.add_argument("--note", default="")
    parser.add_argument("--stem", default="dfsv_study")
    args = parser.parse_args()
    results = {"machine": machine(), "note": args.note, "filters": [], "nuts": None, "mle": []}
    if not args.skip_filters:
        for n in args.assets:
            for k in args.factors:
                if k <= n:
                    results["filters"] += run_filters(n, k, args.timesteps, args.particles, args.repeats)
    for size in args.mle:
        num_assets, num_factors = (int(v) for v in size.split(":"))
        results["mle"].append(run_mle(num_assets, num_factors, args.timesteps))
        print(json.dumps(results["mle"][-1]), flush=True)
    if args.nuts:
        results["nuts"] = run_nuts(args.nuts_assets, args.nuts_factors, args.nuts_timesteps, args.nuts_warmup,
                                   args.nuts_samples, args.nuts_chains)
        print(json.dumps(results["nuts"]), flush=True)
    results["load_average_after"] = os.getloadavg()
    write(results, args.stem)


if __name__ == "__main__":
    main()
