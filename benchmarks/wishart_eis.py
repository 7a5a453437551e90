"""Wishart SV: time and Monte Carlo accuracy of the EIS log-likelihood, its gradient and EIS maximum likelihood.

For each k in ``--k`` the script simulates T returns from a Wishart SV model (k = 3: seed 003's parameters,
A = inverse of the printed matrix, d = 0.5, nu = 14; other k: d = 0.5, nu = k + 11, A chosen so that the
steady-state precision is 400 I, i.e. standard deviations of 5 %) and, back to back,

* times the EIS log-likelihood (plain whole-path estimate, and the resampled sequential version) after
  compilation, and its Monte Carlo SD over ``--reps`` seeds;
* times the gradient of the plain EIS estimate, both with the EIS kernels refitted at the parameters and with
  them held fixed (the objective that ``fit(method="eis")`` optimises within a round: one simulation pass);
* times the peer: bayesvol's generic bootstrap particle filter (no package we know of implements EIS for
  Wishart SV), with as many particles as it takes to reach about the same MC SD as resampled EIS
  (``--pf-particles``), and reports the ratio of the two times;
* for k in ``--mle-k`` runs ``bayesvol.fit(..., method="eis")`` from one (generic) start and records the
  time, rounds, optimiser iterations, the estimates of d and nu with their standard errors, and the truth;
* with ``--mle-only``, only the full EIS maximum likelihood for each k in ``--k``;
* for k in ``--mle-iter-k`` (sizes where a full fit does not fit the time at hand) runs one round of the
  same optimisation (kernels fitted at the start, BFGS from the same generic start) for at most
  ``--mle-budget`` seconds and records the optimiser iterations done, the time per iteration and per
  objective evaluation, and whether it converged within the budget.

Results go to ``<out>/wishart_eis.json`` and ``wishart_eis.md`` with machine information and load.

Usage::

    python benchmarks/wishart_eis.py --quick
    python benchmarks/wishart_eis.py --T 1000 --k 3 5 10 --mle-k 3 5 --mle-iter-k 10 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from _machine import machine_info

import bayesvol
from bayesvol.filters import particle_filter
from bayesvol.filters.wishart_methods import _run_eis
from bayesvol.filters.wishart_methods import eis_loglik as _wishart_eis_loglik
from bayesvol.inference.eis_rounds import _constrained, _fixed_kernel_objective, _free_parameters
from bayesvol.models._base import as_params
from bayesvol.models.wishart_sv import reference_params


def design(k):
    """Parameters for k assets (seed 003's for k = 3)."""
    if k == 3:
        return reference_params()
    d = 0.5
    # steady state Omega_bar = A^{1/(1-d)} for diagonal A: Omega_bar = 400 I  <=>  A = 400^{1-d} I.
    return {"nu": float(k + 11), "d": d, "A": 400.0 ** (1.0 - d) * np.eye(k)}


def timed(fn, reps=1):
    fn()  # compile
    start = time.perf_counter()
    for _ in range(reps):
        out = fn()
    return (time.perf_counter() - start) / reps, out


def eis_loglik(model, params, y, seed, **options):
    return float(bayesvol.log_likelihood(model, params, y, method="eis", seed=seed, **options))


def run_mle(model, params, y, num_particles, max_rounds=30, se_differences="forward"):
    """Full EIS maximum likelihood from one generic start, timed, with the rounds' diagnostics."""
    start = time.perf_counter()
    fit = bayesvol.fit(model, y, method="eis", num_draws=num_particles, num_starts=1, max_rounds=max_rounds,
                       se_differences=se_differences)
    seconds = time.perf_counter() - start
    diag = fit.diagnostics
    return {"seconds": seconds, "converged": bool(fit.converged), "rounds": diag["eis_rounds"],
            "settled": bool(diag["eis_settled"]), "distance_in_se": diag["eis_distance_in_se"],
            "round_ratio": diag["eis_round_ratio"], "iterations": diag["eis_optimiser_iterations"],
            "last_move_in_se": diag["eis_last_move_in_se"], "loglik": fit.loglik,
            "loglik_mc_sd": diag.get("loglik_mc_sd"), "loglik_sequential_eis": diag.get("loglik_sequential_eis"),
            "d": fit.params["d"], "d_se": fit.se["d"], "nu": fit.params["nu"], "nu_se": fit.se["nu"],
            "true_d": params["d"], "true_nu": params["nu"], "A": np.asarray(fit.params["A"]).tolist(),
            # the low-noise (resampled) EIS log-likelihood at the truth, to compare with the one at the estimate
            "loglik_sequential_eis_at_truth": eis_loglik(model, params, y, 0, num_draws=num_particles,
                                                         resample=True),
            "load_at_end": os.getloadavg()[0], "max_rounds": max_rounds, "se_differences": se_differences}


def run_one(k, T, reps, num_particles, pf_particles, mle, mle_iterations, mle_budget, mle_only=False,
            max_rounds=30, se_differences="forward"):
    model = bayesvol.models.WishartSV()
    params = design(k)
    y = bayesvol.simulate(model, params, num_timesteps=T, seed=11).y
    row = {"k": k, "T": T, "num_particles": num_particles, "load_at_start": os.getloadavg()[0]}
    if mle_only:
        row["mle"] = run_mle(model, params, y, num_particles, max_rounds, se_differences)
        print(json.dumps(row, default=float), flush=True)
        return row
    for label, options in (("plain", {}), ("resampled", {"resample": True})):
        seconds, _ = timed(lambda options=options: eis_loglik(model, params, y, 0, num_draws=num_particles,
                                                              **options))
        values = [eis_loglik(model, params, y, s, num_draws=num_particles, **options) for s in range(reps)]
        row[f"eis_{label}_seconds"] = seconds
        row[f"eis_{label}_loglik_mean"] = float(np.mean(values))
        row[f"eis_{label}_loglik_sd"] = float(np.std(values, ddof=1))
    bound = model.bind_data(y)
    p = as_params(bound, params)
    jy = jnp.asarray(y)
    out = _run_eis(p, jy, 0, num_draws=num_particles, num_iterations=10, tolerance=1e-2, antithetic=True,
                   resample=False)
    row["eis_passes"] = int(out.iterations)
    grad = jax.jit(jax.grad(lambda q: _wishart_eis_loglik(bound, q, jy, num_draws=num_particles).sum()))
    seconds, _ = timed(lambda: jax.block_until_ready(grad(p)))
    row["eis_gradient_seconds"] = seconds
    u0 = jnp.asarray(_free_parameters(bound, p))
    kernels = (out.c, out.C)

    def objective(u):
        return jax.block_until_ready(_fixed_kernel_objective(jnp.asarray(u), bound, jy, jnp.asarray(0), kernels,
                                                             num_draws=num_particles, antithetic=True))

    seconds, _ = timed(lambda: objective(u0))
    row["fixed_kernel_value_and_gradient_seconds"] = seconds
    run_pf = jax.jit(lambda key: particle_filter(bound, p, jy, key=key, num_particles=pf_particles).log_likelihood)
    seconds, _ = timed(lambda: float(run_pf(jax.random.PRNGKey(0))))
    values = [float(run_pf(jax.random.PRNGKey(s))) for s in range(reps)]
    row.update({"pf_particles": pf_particles, "pf_seconds": seconds, "pf_loglik_mean": float(np.mean(values)),
                "pf_loglik_sd": float(np.std(values, ddof=1)),
                "ratio_pf_over_resampled_eis_seconds": seconds / row["eis_resampled_seconds"]})
    if mle:
        row["mle"] = run_mle(model, params, y, num_particles, max_rounds, se_differences)
    elif mle_iterations:
        row["mle_round"] = one_round(bound, y, num_particles, mle_budget)
    print(json.dumps(row, default=float), flush=True)
    return row


def one_round(model, y, num_particles, budget):
    """One round of the EIS-MLE optimisation (kernels fixed at the generic start), stopped after ``budget`` s."""
    jy = jnp.asarray(y)
    start = as_params(model, model.start_values(y)[0])
    u0 = _free_parameters(model, start)
    began = time.perf_counter()
    out = _run_eis(start, jy, 0, num_draws=num_particles, num_iterations=10, tolerance=1e-2, antithetic=True,
                   resample=False)
    kernels = (out.c, out.C)
    evaluations = []

    def fun(u):
        t0 = time.perf_counter()
        v, g = _fixed_kernel_objective(jnp.asarray(u), model, jy, jnp.asarray(0), kernels,
                                       num_draws=num_particles, antithetic=True)
        v, g = float(v), np.asarray(g, dtype=np.float64)
        evaluations.append(time.perf_counter() - t0)
        return (v, g) if np.isfinite(v) and np.all(np.isfinite(g)) else (1e10, np.zeros_like(g))

    fun(u0)  # compile
    setup = time.perf_counter() - began
    began = time.perf_counter()
    iterations = []

    def stop_on_budget(intermediate_result):
        iterations.append(time.perf_counter() - began)
        if time.perf_counter() - began > budget:
            raise StopIteration

    res = scipy.optimize.minimize(fun, u0, jac=True, method="BFGS", callback=stop_on_budget,
                                  options={"maxiter": 2000, "gtol": 1e-5})
    theta = _constrained(model, jnp.asarray(res.x))
    return {"setup_seconds": setup, "seconds": time.perf_counter() - began, "iterations": int(res.nit),
            "evaluations": len(evaluations) - 1, "seconds_per_evaluation": float(np.median(evaluations[1:])),
            "seconds_per_iteration": (iterations[-1] / len(iterations)) if iterations else None,
            "converged": bool(res.success), "message": str(res.message), "budget_seconds": budget,
            "max_abs_gradient": float(np.max(np.abs(res.jac))), "d": float(theta.d), "nu": float(theta.nu),
            "free_parameters": int(u0.size)}


def render(result) -> str:
    m = result["machine"]
    lines = ["# Wishart SV: EIS likelihood and maximum likelihood", "",
             f"Machine: {m['cpu_model']}, {m['cpu_count']} cores, load average "
             f"{', '.join(f'{v:.1f}' for v in m['loadavg_start'])} at the start (shared machine; each row "
             f"records the 1-minute load when it started), jax {m['versions']['jax']} on {m['jax_devices'][0]}.",
             "",
             "| k | T | N | load | EIS s | EIS SD | EIS+resampling s | SD | EIS passes | gradient s (kernels refitted) "
             "| value+gradient s (kernels fixed) | bootstrap PF (particles) s | SD | PF / EIS time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in result["rows"] if "eis_plain_seconds" in r):
        lines.append(f"| {r['k']} | {r['T']} | {r['num_particles']} | {r.get('load_at_start', float('nan')):.1f} | "
                     f"{r['eis_plain_seconds']:.2f} | {r['eis_plain_loglik_sd']:.2f} | "
                     f"{r['eis_resampled_seconds']:.2f} | {r['eis_resampled_loglik_sd']:.2f} | "
                     f"{r.get('eis_passes', '')} | {r['eis_gradient_seconds']:.2f} | "
                     f"{r.get('fixed_kernel_value_and_gradient_seconds', float('nan')):.2f} | "
                     f"{r['pf_seconds']:.2f} ({r['pf_particles']}) | {r['pf_loglik_sd']:.2f} | "
                     f"{r['ratio_pf_over_resampled_eis_seconds']:.1f} |")
    mles = sorted((r for r in result["rows"] if "mle" in r), key=lambda r: r["k"])
    if mles:
        lines += ["", "Full EIS maximum likelihood (`bayesvol.fit(model, y, method=\"eis\")`, one generic start, "
                  "standard errors included):", "",
                  "| k | T | N | load | MLE s | rounds | BFGS iterations | settled (distance in SE) | converged | "
                  "d (se) | true d | nu (se) | true nu | log-lik (plain EIS) | MC SD of log-lik | "
                  "sequential EIS log-lik at estimate | at truth | SE differences |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in mles:
            e = r["mle"]
            settled = (f"{e['settled']} ({e['distance_in_se']:.2f})" if "settled" in e
                       else f"(last move {e['last_move_in_se']:.2f})" if "last_move_in_se" in e else "")
            mc_sd = f"{e['loglik_mc_sd']:.2f}" if e.get("loglik_mc_sd") is not None else ""
            sequential = [f"{e[key]:.2f}" if e.get(key) is not None else ""
                          for key in ("loglik_sequential_eis", "loglik_sequential_eis_at_truth")]
            # rows before the option existed used central differences
            se_differences = e.get("se_differences", "central")
            lines.append(f"| {r['k']} | {r['T']} | {r['num_particles']} | {r.get('load_at_start', float('nan')):.1f} | "
                         f"{e['seconds']:.0f} | {e.get('rounds', '')} | {e.get('iterations', '')} | {settled} | "
                         f"{e['converged']} | {e['d']:.3f} ({e['d_se']:.3f}) | {e['true_d']} | "
                         f"{e['nu']:.1f} ({e['nu_se']:.1f}) | {e['true_nu']} | {e['loglik']:.2f} | {mc_sd} | "
                         f"{sequential[0]} | {sequential[1]} | {se_differences} |")
    rounds = [r for r in result["rows"] if "mle_round" in r]
    if rounds:
        lines += ["", "One round of the EIS-MLE optimisation only (kernels fitted at the generic start, then BFGS "
                  "with them fixed), stopped after the time budget:", "",
                  "| k | T | free parameters | setup s | budget s | BFGS iterations done | s per iteration | "
                  "s per evaluation | converged in budget | max abs gradient | d | nu |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rounds:
            e = r["mle_round"]
            per_iteration = "" if e["seconds_per_iteration"] is None else f"{e['seconds_per_iteration']:.1f}"
            lines.append(f"| {r['k']} | {r['T']} | {e['free_parameters']} | {e['setup_seconds']:.0f} | "
                         f"{e['budget_seconds']:.0f} | {e['iterations']} | {per_iteration} | "
                         f"{e['seconds_per_evaluation']:.2f} | {e['converged']} | {e['max_abs_gradient']:.2g} | "
                         f"{e['d']:.3f} | {e['nu']:.1f} |")
    lines += ["", "SD: Monte Carlo standard deviation of the log-likelihood over seeds at fixed parameters."]
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--k", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--mle-k", type=int, nargs="*", default=[3, 5])
    parser.add_argument("--mle-iter-k", type=int, nargs="*", default=[10])
    parser.add_argument("--mle-budget", type=float, default=600.0, help="seconds for the --mle-iter-k round")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--num-particles", type=int, default=128)
    parser.add_argument("--pf-particles", type=int, default=4000)
    parser.add_argument("--quick", action="store_true", help="T = 100, k = 2 and 3, no MLE")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--rows", help="file of JSON rows printed by an earlier run: only re-render them")
    parser.add_argument("--note", default="", help="text appended to the Markdown report")
    parser.add_argument("--mle-only", action="store_true",
                        help="only the full EIS-MLE of each k (no likelihood, gradient or PF timings)")
    parser.add_argument("--max-rounds", type=int, default=30, help="most EIS-MLE rounds")
    parser.add_argument("--se-differences", choices=("forward", "central"), default="forward",
                        help="differences of the gradient for the standard errors")
    args = parser.parse_args()
    # the EIS-MLE rounds report their progress (time, iterations, moves, estimates) on the log
    logging.basicConfig(format="%(asctime)s %(message)s", level=logging.WARNING)
    logging.getLogger("bayesvol.inference.eis_rounds").setLevel(logging.INFO)
    if args.quick:
        args.T, args.k, args.mle_k, args.reps, args.pf_particles = 100, [3], [], 3, 500
        args.mle_iter_k, args.mle_budget = [3], 20.0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine_info(), "settings": vars(args), "rows": [], "note": args.note}
    if args.rows:
        # re-render rows printed by an earlier run (one JSON object per line), e.g. one stopped early
        result["rows"] = [json.loads(line) for line in Path(args.rows).read_text().splitlines()
                          if line.startswith("{")]
    for k in [] if args.rows else args.k:
        result["rows"].append(run_one(k, args.T, args.reps, args.num_particles, args.pf_particles,
                                      k in args.mle_k, k in args.mle_iter_k, args.mle_budget, args.mle_only,
                                      args.max_rounds, args.se_differences))
        # written after every row, so a long run stopped early keeps what it measured
        (out / "wishart_eis.json").write_text(json.dumps(result, indent=2, default=float))
        (out / "wishart_eis.md").write_text(render(result))
    (out / "wishart_eis.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "wishart_eis.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
