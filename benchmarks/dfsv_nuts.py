"""NUTS on the dynamic factor SV model: cost per gradient, tree sizes, ESS per second and recovery.

Simulates N assets with K factors over T steps (the parameters of ``dfsv_study.true_params``), runs
``bayesvol.sample`` (factors marginalised by the Kalman filter, start from the Bellman filter) and records
the wall time, the time per gradient of the log density (the Fisher-identity gradient the program uses,
and reverse-mode differentiation through the Kalman filter for comparison), leapfrog steps per draw,
divergences, bulk ESS (minimum and median) and ESS per second for the parameters and the log-variance
paths, and the recovery: posterior means against the truth and the correlation of the posterior-mean
log-variance path with the true one. There is no peer package with this model (factorstochvol has
independent factors and log-variances), so the comparison is between the two gradients.

Usage::

    python benchmarks/dfsv_nuts.py                               # N 10, K 2, T 1000, 2 chains
    python benchmarks/dfsv_nuts.py --assets 5 --factors 1 --timesteps 500 --warmup 300 --samples 300
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import arviz_stats
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import initialize_model

import bayesvol
from bayesvol.models import DFSV
from bayesvol.models import _dfsv_kalman as kalman

try:
    from _machine import machine_info
    from dfsv_study import true_params
except ImportError:     # run as a module from the repository root
    from benchmarks._machine import machine_info
    from benchmarks.dfsv_study import true_params

RESULTS = Path(__file__).parent / "results"


def _median_time(fn, *args, repeats: int = 20) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gradient_times(model, y, truth) -> dict:
    """Seconds per gradient of the program's log density, and of the Kalman log-likelihood by both routes."""
    info = initialize_model(jax.random.PRNGKey(0), model.program, model_args=(y,))
    potential = jax.jit(jax.value_and_grad(info.potential_fn))
    h = jnp.broadcast_to(jnp.asarray(truth["mu"]), (y.shape[0], model.num_factors))
    args = (jnp.asarray(truth["lambda_r"]), jnp.asarray(truth["Phi_f"]), h, jnp.asarray(truth["sigma2"]))
    fisher = jax.jit(jax.grad(lambda *a: kalman.marginal_loglik(*a, y).log_likelihood, argnums=(0, 1, 2, 3)))
    autodiff = jax.jit(jax.grad(lambda *a: kalman.filter_factors(*a, y).log_likelihood, argnums=(0, 1, 2, 3)))
    value = jax.jit(lambda *a: kalman.filter_factors(*a, y).log_likelihood)
    out = {"log_density_gradient": _median_time(potential, info.param_info.z),
           "kalman_value": _median_time(value, *args), "kalman_gradient_fisher": _median_time(fisher, *args),
           "kalman_gradient_reverse_mode": _median_time(autodiff, *args)}
    out["reverse_mode_over_fisher"] = out["kalman_gradient_reverse_mode"] / out["kalman_gradient_fisher"]
    return out


def run(num_assets: int, num_factors: int, num_timesteps: int, num_chains: int, num_warmup: int, num_samples: int,
        max_tree_depth: int, seed: int) -> dict:
    model = DFSV(num_factors=num_factors)
    truth = true_params(num_assets, num_factors)
    sim = bayesvol.simulate(model, truth, num_timesteps, seed=2)
    y = jnp.asarray(sim.y)
    grads = gradient_times(model, y, truth)
    print(json.dumps(grads), flush=True)
    start = time.perf_counter()
    idata = bayesvol.sample(model, sim.y, num_chains=num_chains, num_warmup=num_warmup, num_samples=num_samples,
                            seed=seed, max_tree_depth=max_tree_depth, target_accept_prob=0.9, progress_bar=False,
                            warn=False)
    seconds = time.perf_counter() - start
    post = idata.posterior
    names = list(model.param_names)
    ess_by_name = {n: np.ravel(arviz_stats.ess(post[n], method="bulk").values) for n in names}
    ess_params = np.concatenate(list(ess_by_name.values()))
    ess_params = ess_params[np.isfinite(ess_params)]   # fixed entries (identified loadings) have no ESS
    ess_h = np.ravel(arviz_stats.ess(post["h"], method="bulk").values)
    h_mean = post["h"].mean(("chain", "draw")).values
    recovery = {}
    for name in names:
        draws = post[name].values.reshape(-1, *np.shape(truth[name]))
        sd = draws.std(0)
        free = sd > 0
        recovery[name] = {"posterior_mean": np.round(draws.mean(0), 3).tolist(),
                          "truth": np.round(np.asarray(truth[name]), 3).tolist(),
                          "max_abs_z": float(np.max(np.abs((draws.mean(0) - truth[name])[free] / sd[free])))}
    steps = idata.sample_stats["n_steps"].values
    return {"N": num_assets, "K": num_factors, "T": num_timesteps, "chains": num_chains, "warmup": num_warmup,
            "samples": num_samples, "max_tree_depth": max_tree_depth, "seconds_total": seconds,
            "seconds_per_gradient": grads, "mean_leapfrog_steps": float(steps.mean()),
            "max_tree_depth_hits": int((steps >= 2**max_tree_depth - 1).sum()),
            "step_size": float(np.median(idata.sample_stats["step_size"].values)),
            "divergences": int(idata.sample_stats["diverging"].sum()),
            "ess_bulk_params": {"min": float(ess_params.min()), "median": float(np.median(ess_params)),
                                "min_per_second": float(ess_params.min() / seconds),
                                "median_per_second": float(np.median(ess_params) / seconds)},
            "ess_bulk_min_by_parameter": {n: float(np.nanmin(v)) for n, v in ess_by_name.items()},
            "ess_bulk_h": {"min": float(ess_h.min()), "median": float(np.median(ess_h)),
                           "min_per_second": float(ess_h.min() / seconds),
                           "median_per_second": float(np.median(ess_h) / seconds)},
            "h_corr_posterior_mean_vs_truth": [float(np.corrcoef(h_mean[:, j], sim.h[:, j])[0, 1])
                                               for j in range(num_factors)],
            "recovery": recovery}


def write(results: dict, stem: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2))
    lines = [f"# NUTS on DFSV ({stem})", "", "Machine: " + json.dumps(results["machine"]), "",
             f"Load average after the run: {results['load_average_after']}", "", results["note"], "",
             "| N | K | T | chains | warmup + draws | wall s | s / gradient | reverse-mode / Fisher gradient | "
             "mean steps | divergences | min ESS params | median ESS params | min ESS/s params | min ESS h | "
             "median ESS h | min ESS/s h | corr(h) |",
             "|" + "---|" * 17]
    for r in results["runs"]:
        g = r["seconds_per_gradient"]
        p, h = r["ess_bulk_params"], r["ess_bulk_h"]
        lines.append(f"| {r['N']} | {r['K']} | {r['T']} | {r['chains']} | {r['warmup']} + {r['samples']} | "
                     f"{r['seconds_total']:.0f} | {g['log_density_gradient'] * 1e3:.2f} ms | "
                     f"{g['reverse_mode_over_fisher']:.1f} | {r['mean_leapfrog_steps']:.0f} | {r['divergences']} | "
                     f"{p['min']:.0f} | {p['median']:.0f} | {p['min_per_second']:.3f} | {h['min']:.0f} | "
                     f"{h['median']:.0f} | {h['min_per_second']:.3f} | "
                     + ", ".join(f"{c:.2f}" for c in r["h_corr_posterior_mean_vs_truth"]) + " |")
    lines += ["", "Recovery (posterior mean, truth, largest |mean - truth| / posterior sd):", ""]
    for r in results["runs"]:
        lines.append(f"N={r['N']}, K={r['K']}, T={r['T']}:")
        if "ess_bulk_min_by_parameter" in r:
            lines.append("- minimum bulk ESS by parameter: " + ", ".join(
                f"`{name}` {value:.0f}" for name, value in r["ess_bulk_min_by_parameter"].items()))
        lines += [f"- `{name}`: max |z| = {v['max_abs_z']:.2f}; mean {v['posterior_mean']}; truth {v['truth']}"
                  for name, v in r["recovery"].items()]
        lines.append("")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=10)
    parser.add_argument("--factors", type=int, default=2)
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--max-tree-depth", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="")
    parser.add_argument("--stem", default="dfsv_nuts")
    args = parser.parse_args()
    results = {"machine": machine_info(), "note": args.note, "runs": []}
    results["runs"].append(run(args.assets, args.factors, args.timesteps, args.chains, args.warmup, args.samples,
                               args.max_tree_depth, args.seed))
    print(json.dumps(results["runs"][-1]), flush=True)
    results["load_average_after"] = list(os.getloadavg())
    write(results, args.stem)


if __name__ == "__main__":
    main()
