"""Wishart SV: time and Monte Carlo accuracy of the EIS log-likelihood, its gradient and EIS maximum likelihood.

For each k in ``--k`` the script simulates T returns from a Wishart SV model (k = 3: seed 003's parameters,
A = inverse of the printed matrix, d = 0.5, nu = 14; other k: d = 0.5, nu = k + 11, A chosen so that the
steady-state precision is 400 I, i.e. standard deviations of 5 %) and, back to back,

* times the EIS log-likelihood (plain whole-path estimate, and the resampled sequential version) after
  compilation, and its Monte Carlo SD over ``--reps`` seeds;
* times the gradient of the plain EIS estimate (what the optimiser calls);
* times the peer: bayesvol's generic bootstrap particle filter (no package we know of implements EIS for
  Wishart SV), with as many particles as it takes to reach about the same MC SD as resampled EIS
  (``--pf-particles``), and reports the ratio of the two times;
* optionally (``--mle``) runs ``bayesvol.fit(..., method="eis")`` from one start and records the time,
  the estimates of d and nu with their standard errors, and the truth.

Results go to ``<out>/wishart_eis.json`` and ``wishart_eis.md`` with machine information and load.

Usage::

    python benchmarks/wishart_eis.py --quick
    python benchmarks/wishart_eis.py --T 1000 --k 3 5 10 --mle-k 3 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

import bayesvol
from bayesvol.filters import particle_filter
from bayesvol.models._base import as_params
from bayesvol.models.wishart_sv import _wishart_eis_loglik, reference_params


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


def run_one(k, T, reps, num_particles, pf_particles, mle):
    model = bayesvol.models.WishartSV()
    params = design(k)
    y = bayesvol.simulate(model, params, num_timesteps=T, seed=11).y
    row = {"k": k, "T": T, "num_particles": num_particles}
    for label, options in (("plain", {}), ("resampled", {"resample": True})):
        seconds, _ = timed(lambda options=options: eis_loglik(model, params, y, 0, num_particles=num_particles,
                                                              **options))
        values = [eis_loglik(model, params, y, s, num_particles=num_particles, **options) for s in range(reps)]
        row[f"eis_{label}_seconds"] = seconds
        row[f"eis_{label}_loglik_mean"] = float(np.mean(values))
        row[f"eis_{label}_loglik_sd"] = float(np.std(values, ddof=1))
    bound = model.bind_data(y)
    p = as_params(bound, params)
    jy = jax.numpy.asarray(y)
    grad = jax.jit(jax.grad(lambda q: _wishart_eis_loglik(bound, q, jy, num_particles=num_particles).sum()))
    seconds, _ = timed(lambda: jax.block_until_ready(grad(p)))
    row["eis_gradient_seconds"] = seconds
    run_pf = jax.jit(lambda key: particle_filter(bound, p, jy, key=key, num_particles=pf_particles).log_likelihood)
    seconds, _ = timed(lambda: float(run_pf(jax.random.PRNGKey(0))))
    values = [float(run_pf(jax.random.PRNGKey(s))) for s in range(reps)]
    row.update({"pf_particles": pf_particles, "pf_seconds": seconds, "pf_loglik_mean": float(np.mean(values)),
                "pf_loglik_sd": float(np.std(values, ddof=1)),
                "ratio_pf_over_resampled_eis_seconds": seconds / row["eis_resampled_seconds"]})
    if mle:
        start = time.perf_counter()
        fit = bayesvol.fit(model, y, method="eis", num_particles=num_particles, num_starts=1)
        row["mle"] = {"seconds": time.perf_counter() - start, "converged": bool(fit.converged),
                      "loglik": fit.loglik, "d": fit.params["d"], "d_se": fit.se["d"], "nu": fit.params["nu"],
                      "nu_se": fit.se["nu"], "true_d": params["d"], "true_nu": params["nu"]}
    print(json.dumps(row), flush=True)
    return row


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version(),
            "jax": jax.__version__, "jax_backend": jax.default_backend(),
            "numpyro": importlib.metadata.version("numpyro"), "bayesvol": bayesvol.__version__}


def render(result) -> str:
    lines = ["# Wishart SV: EIS likelihood and maximum likelihood", "",
             f"Machine: {result['machine']['processor']}, {result['machine']['cpu_count']} cores, load average "
             f"{', '.join(f'{v:.1f}' for v in result['machine']['load_average'])} at the start "
             f"(shared machine), jax {result['machine']['jax']} on {result['machine']['jax_backend']}.", "",
             "| k | T | N | EIS s | EIS SD | EIS+resampling s | SD | gradient s | bootstrap PF (particles) s "
             "| SD | PF / EIS time |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['k']} | {r['T']} | {r['num_particles']} | {r['eis_plain_seconds']:.2f} | "
                     f"{r['eis_plain_loglik_sd']:.2f} | {r['eis_resampled_seconds']:.2f} | "
                     f"{r['eis_resampled_loglik_sd']:.2f} | {r['eis_gradient_seconds']:.2f} | "
                     f"{r['pf_seconds']:.2f} ({r['pf_particles']}) | {r['pf_loglik_sd']:.2f} | "
                     f"{r['ratio_pf_over_resampled_eis_seconds']:.1f} |")
    mles = [r for r in result["rows"] if "mle" in r]
    if mles:
        lines += ["", "| k | T | MLE s | converged | d (se) | true d | nu (se) | true nu |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in mles:
            m = r["mle"]
            lines.append(f"| {r['k']} | {r['T']} | {m['seconds']:.0f} | {m['converged']} | {m['d']:.3f} "
                         f"({m['d_se']:.3f}) | {m['true_d']} | {m['nu']:.1f} ({m['nu_se']:.1f}) | "
                         f"{m['true_nu']} |")
    lines += ["", "SD: Monte Carlo standard deviation of the log-likelihood over seeds at fixed parameters."]
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--k", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--mle-k", type=int, nargs="*", default=[3])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--num-particles", type=int, default=128)
    parser.add_argument("--pf-particles", type=int, default=4000)
    parser.add_argument("--quick", action="store_true", help="T = 100, k = 2 and 3, no MLE")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--rows", help="file of JSON rows printed by an earlier run: only re-render them")
    parser.add_argument("--note", default="", help="text appended to the Markdown report")
    args = parser.parse_args()
    if args.quick:
        args.T, args.k, args.mle_k, args.reps, args.pf_particles = 100, [3], [], 3, 500
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "settings": vars(args), "rows": [], "note": args.note}
    if args.rows:
        # re-render rows printed by an earlier run (one JSON object per line), e.g. one stopped early
        result["rows"] = [json.loads(line) for line in Path(args.rows).read_text().splitlines()
                          if line.startswith("{")]
    for k in [] if args.rows else args.k:
        result["rows"].append(run_one(k, args.T, args.reps, args.num_particles, args.pf_particles,
                                      k in args.mle_k))
        # written after every row, so a long run stopped early keeps what it measured
        (out / "wishart_eis.json").write_text(json.dumps(result, indent=2, default=float))
        (out / "wishart_eis.md").write_text(render(result))
    (out / "wishart_eis.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "wishart_eis.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
