"""Minimum bulk-ESS per second of NUTS on the univariate SV model: bayesvol (NumPyro) against Stan (pystan 3).

Model (normal errors, no leverage)::

    y_t = exp(h_t / 2) eps_t,   h_t = mu + phi (h_{t-1} - mu) + sigma eta_t,   h_1 ~ N(mu, sigma^2 / (1 - phi^2))
    mu ~ N(0, 10^2),   (phi + 1) / 2 ~ Beta(5, 1.5),   sigma ~ HalfNormal(1)

For each series length T the script simulates one data set with ``bayesvol.simulate`` and, back to back,

* runs bayesvol's NumPyro program (``model.program``) with the NUTS settings of ``bayesvol.sample``, in the
  non-centred and the centred parametrisation, timing compilation, warm-up and sampling separately
  (see :func:`run_numpyro`);
* calls ``bayesvol.sample`` itself once per parametrisation, timed end to end (the public API check);
* runs the same model written non-centred in Stan through pystan 3, with the same target acceptance rate.

It reports the minimum bulk-ESS over (mu, phi, sigma) and over the latent path h, wall and CPU times,
min-ESS per second for two time definitions (sampling only; warm-up + compilation + sampling) and the
bayesvol/Stan ratios. Optional variants (chains vectorised or spread over devices, a dense mass-matrix
block, a scan-free latent path), gradient micro-benchmarks (float64 / float32) and a check of how much of
Stan's sampling time goes to writing draws show what limits speed.

Usage::

    python benchmarks/sv_nuts.py --quick                 # smoke check, about a minute once Stan is cached
    python benchmarks/sv_nuts.py --T 1000 2000 --out benchmarks/results --fresh-stan-build
    python benchmarks/sv_nuts.py --recheck      # redo only the gradient timings and the Stan output check
    python benchmarks/sv_nuts.py --render-only --interpretation notes.md   # rewrite the Markdown report
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import arviz_base
import arviz_stats
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from _machine import machine_info
from jax import lax
from numpyro.infer import NUTS, init_to_median
from numpyro.infer.util import initialize_model

import bayesvol
from bayesvol.inference.mcmc import _chain_method
from bayesvol.models import _base

TRUE_PARAMS = {"mu": -0.5, "phi": 0.95, "sigma": 0.2}
PARAM_NAMES = ("mu", "phi", "sigma")

STAN_PROGRAM = """
data {
  int<lower=2> T;
  vector[T] y;
}
parameters {
  real mu;
  real<lower=-1, upper=1> phi;
  real<lower=0> sigma;
  vector[T] h_std;
}
transformed parameters {
  // non-centred: scale the standard-normal innovations, then run the AR(1) recursion
  vector[T] h = sigma * h_std;
  h[1] = h[1] / sqrt(1 - square(phi));
  h = h + mu;
  for (t in 2:T) {
    h[t] = h[t] + phi * (h[t - 1] - mu);
  }
}
model {
  mu ~ normal(0, 10);
  target += beta_lpdf((phi + 1) / 2 | 5, 1.5);  // linear map: constant Jacobian
  sigma ~ normal(0, 1);                          // half-normal through the lower bound
  h_std ~ std_normal();
  y ~ normal(0, exp(h / 2));
}
"""


# ----------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    load = os.getloadavg()[0]
    print(f"[{time.strftime('%H:%M:%S')} load {load:4.2f}] {msg}", flush=True)


def block(tree):
    return jax.tree.map(lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree)






def children_cpu_seconds() -> float:
    """CPU time (user + system) of the live child processes of this process (Stan's worker processes)."""
    me, total = os.getpid(), 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # fields[1] is the parent pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


@contextlib.contextmanager
def captured_stderr():
    """Send file descriptor 2 to a temporary file (pystan's progress bar and Stan's many messages)."""
    sys.stderr.flush()
    saved = os.dup(2)
    box = {}
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield box
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box["text"] = tmp.read().decode(errors="replace")


def ess_summary(posterior: dict) -> dict:
    """Bulk-ESS per parameter and min / median over the latent path h; ``posterior`` arrays are (chain, draw, ...)."""
    idata = arviz_base.from_dict({"posterior": {k: np.asarray(posterior[k]) for k in PARAM_NAMES + ("h",)}},
                                 dims={"h": ["time"]})
    ess = arviz_stats.ess(idata, method="bulk")
    per_param = {k: float(ess[k]) for k in PARAM_NAMES}
    ess_h = np.asarray(ess["h"])
    return {
        "ess_bulk": per_param,
        "min_ess_params": min(per_param.values()),
        "min_ess_param_name": min(per_param, key=per_param.get),
        "min_ess_h": float(ess_h.min()),
        "median_ess_h": float(np.median(ess_h)),
        "posterior_mean": {k: float(np.mean(posterior[k])) for k in PARAM_NAMES},
    }


def add_rates(rec: dict) -> dict:
    for key in ("sampling", "total"):
        seconds = rec[f"time_{key}_s"]
        rec[f"min_ess_params_per_s_{key}"] = rec["min_ess_params"] / seconds
        rec[f"min_ess_h_per_s_{key}"] = rec["min_ess_h"] / seconds
    if rec.get("cpu_sampling_s"):
        rec["min_ess_params_per_cpu_s_sampling"] = rec["min_ess_params"] / rec["cpu_sampling_s"]
        rec["min_ess_h_per_cpu_s_sampling"] = rec["min_ess_h"] / rec["cpu_sampling_s"]
    return rec


def nuts_settings() -> dict:
    """The NUTS settings ``bayesvol.sample`` uses, read from its signature so the benchmark follows the package."""
    sig = inspect.signature(bayesvol.sample).parameters
    return {"target_accept_prob": sig["target_accept_prob"].default, "max_tree_depth": sig["max_tree_depth"].default}


# ----------------------------------------------------------------------------------------------------------
# bayesvol / NumPyro, phase by phase
# ----------------------------------------------------------------------------------------------------------
def run_numpyro(program, y, *, num_chains, num_warmup, num_samples, seed, layout="sequential", dense_mass=False):
    """NUTS on ``program`` with bayesvol's settings, compile / warm-up / sampling timed apart.

    The kernel is numpyro's NUTS on the program, with the settings and init strategy of ``bayesvol.sample``.
    Each phase is one jitted ``lax.scan`` over ``kernel.sample`` (what ``MCMC`` runs inside ``fori_collect``),
    compiled ahead of time so that compilation is not counted in the warm-up or sampling times. Warm-up
    adaptation happens inside ``kernel.sample`` for the first ``num_warmup`` iterations, as in ``MCMC``.

    ``layout``: ``"sequential"`` (chains one after another, what ``bayesvol.sample`` does when there are
    fewer devices than chains), ``"vectorized"`` (all chains in one ``vmap``) or ``"devices"`` (chains split
    over the CPU devices with ``pmap``, ``vmap`` within each device).
    """
    settings = nuts_settings()
    kernel = NUTS(program, init_strategy=init_to_median(num_samples=15), dense_mass=dense_mass, **settings)
    model_args, model_kwargs = (y,), {}
    keys = jax.random.split(jax.random.PRNGKey(seed), num_chains)

    def warm_fn(state):
        return lax.scan(lambda s, _: (kernel.sample(s, model_args, model_kwargs), None), state, None,
                        length=num_warmup)[0]

    def sample_fn(state):
        def body(s, _):
            s = kernel.sample(s, model_args, model_kwargs)
            return s, (s.z, s.num_steps, s.diverging, s.accept_prob)

        return lax.scan(body, state, None, length=num_samples)

    t_start, c_start = time.perf_counter(), time.process_time()
    if layout == "sequential":
        groups = [keys[i] for i in range(num_chains)]
        wrap = jax.jit
    else:
        groups = [keys]
        wrap = jax.jit
        if layout == "devices":
            num_devices = jax.local_device_count()
            if num_chains % num_devices:
                raise ValueError("num_chains must be a multiple of the device count for layout='devices'")
            wrap = jax.pmap
    times = {"init": 0.0, "compile": 0.0, "warmup": 0.0, "sampling": 0.0}
    cpu = {"warmup": 0.0, "sampling": 0.0}
    warm_c = samp_c = None
    outputs = []
    for chain_keys in groups:
        t0 = time.perf_counter()
        state = block(kernel.init(chain_keys, num_warmup, model_args=model_args, model_kwargs=model_kwargs))
        if layout == "devices":
            state = jax.tree.map(lambda x: x.reshape((jax.local_device_count(), -1) + x.shape[1:]), state)
        times["init"] += time.perf_counter() - t0
        if warm_c is None:
            t0 = time.perf_counter()
            warm_c = wrap(warm_fn).lower(state).compile()
            samp_c = wrap(sample_fn).lower(state).compile()
            times["compile"] += time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        state = block(warm_c(state))
        times["warmup"] += time.perf_counter() - t0
        cpu["warmup"] += time.process_time() - c0
        step_size = np.asarray(state.adapt_state.step_size).ravel()
        t0, c0 = time.perf_counter(), time.process_time()
        _, (z, num_steps, diverging, accept_prob) = block(samp_c(state))
        times["sampling"] += time.perf_counter() - t0
        cpu["sampling"] += time.process_time() - c0
        outputs.append((z, num_steps, diverging, accept_prob, step_size))
    # back to (chain, draw, ...)
    if layout == "sequential":
        z = jax.tree.map(lambda *xs: jnp.stack(xs), *[o[0] for o in outputs])
        stats = [np.stack([np.asarray(o[i]) for o in outputs]) for i in (1, 2, 3)]
        step_size = np.concatenate([o[4] for o in outputs])
    else:
        z, num_steps, diverging, accept_prob, step_size = outputs[0]
        if layout == "devices":  # (device, draw, chain-in-device, ...) -> (chain, draw, ...)
            z, num_steps, diverging, accept_prob = jax.tree.map(
                lambda x: jnp.moveaxis(x, 2, 1).reshape((num_chains,) + x.shape[1:2] + x.shape[3:]),
                (z, num_steps, diverging, accept_prob))
        else:  # (draw, chain, ...) -> (chain, draw, ...)
            z, num_steps, diverging, accept_prob = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1),
                                                                (z, num_steps, diverging, accept_prob))
        stats = [np.asarray(num_steps), np.asarray(diverging), np.asarray(accept_prob)]
    t0 = time.perf_counter()
    post = jax.jit(jax.vmap(jax.vmap(kernel.postprocess_fn(model_args, model_kwargs))))(z)
    posterior = {k: np.asarray(post[k]) for k in PARAM_NAMES + ("h",)}
    times["postprocess"] = time.perf_counter() - t0
    wall_total = time.perf_counter() - t_start
    rec = {
        "time_compile_s": times["init"] + times["compile"],
        "time_init_s": times["init"],
        "time_warmup_s": times["warmup"],
        "time_sampling_s": times["sampling"],
        "time_postprocess_s": times["postprocess"],
        "time_total_s": times["init"] + times["compile"] + times["warmup"] + times["sampling"],
        "time_wall_s": wall_total,
        "cpu_warmup_s": cpu["warmup"],
        "cpu_sampling_s": cpu["sampling"],
        "cpu_total_s": time.process_time() - c_start,
        "leapfrog_sampling": int(stats[0].sum()),
        "mean_leapfrog_per_draw": float(stats[0].mean()),
        "divergences": int(stats[1].sum()),
        "mean_accept_prob": float(stats[2].mean()),
        "step_size": [float(s) for s in step_size],
    }
    if layout == "sequential":  # one gradient at a time: wall time per leapfrog step is meaningful
        rec["us_per_leapfrog"] = 1e6 * times["sampling"] / rec["leapfrog_sampling"]
    rec.update(ess_summary(posterior))
    return add_rates(rec)


def run_bayesvol_api(model, y, *, num_chains, num_warmup, num_samples, seed):
    """``bayesvol.sample`` end to end (compilation, warm-up, sampling, result tree assembly)."""
    t0, c0 = time.perf_counter(), time.process_time()
    idata = bayesvol.sample(model, y, num_chains=num_chains, num_warmup=num_warmup, num_samples=num_samples,
                            seed=seed, progress_bar=False, warn=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    post = idata.posterior
    rec = {"time_end_to_end_s": wall, "cpu_end_to_end_s": cpu,
           "divergences": int(idata.sample_stats["diverging"].sum()),
           "mean_leapfrog_per_draw": float(idata.sample_stats["n_steps"].mean())}
    rec.update(ess_summary({k: post[k].values for k in PARAM_NAMES + ("h",)}))
    rec["min_ess_params_per_s_end_to_end"] = rec["min_ess_params"] / wall
    rec["min_ess_h_per_s_end_to_end"] = rec["min_ess_h"] / wall
    return rec


# ----------------------------------------------------------------------------------------------------------
# Stan
# ----------------------------------------------------------------------------------------------------------
def stan_build(y, seed, fresh: bool):
    import httpstan.cache
    import httpstan.models
    import stan

    model_name = httpstan.models.calculate_model_name(STAN_PROGRAM)
    model_dir = httpstan.cache.model_directory(model_name)
    if fresh:
        shutil.rmtree(model_dir, ignore_errors=True)  # only this program's own cached build and fits
    was_cached = model_dir.exists() and any(p.suffix == ".so" for p in model_dir.iterdir())
    with captured_stderr() as messages:
        t0 = time.perf_counter()
        posterior = stan.build(STAN_PROGRAM, data={"T": int(y.shape[0]), "y": np.asarray(y).tolist()},
                               random_seed=seed)
        seconds = time.perf_counter() - t0
    return posterior, {"time_build_s": seconds, "build_was_cached": was_cached,
                       "build_messages": messages["text"].strip()[-2000:]}, model_dir


def stan_elapsed(fits_dir: Path) -> list[dict]:
    """Stan's own per-chain warm-up / sampling times, read from the fits httpstan stores."""
    pattern = re.compile(r"([0-9.eE+-]+) seconds \((Warm-up|Sampling|Total)\)")
    chains = []
    for path in sorted(fits_dir.glob("*.jsonlines.gz")):
        found = {}
        with gzip.open(path, "rt") as fh:
            for line in fh:
                if '"logger"' in line and "seconds (" in line:
                    for value, phase in pattern.findall(line):
                        found[phase] = float(value)
        if found:
            chains.append(found)
    return chains


def run_stan(posterior, model_dir: Path, *, num_chains, num_warmup, num_samples):
    import httpstan.services_stub

    fits_dir = model_dir / "fits"
    shutil.rmtree(fits_dir, ignore_errors=True)  # a cached fit would be returned without sampling
    settings = nuts_settings()
    cpu0 = children_cpu_seconds()
    with captured_stderr() as messages:
        t0 = time.perf_counter()
        fit = posterior.sample(num_chains=num_chains, num_warmup=num_warmup, num_samples=num_samples,
                               delta=settings["target_accept_prob"], max_depth=settings["max_tree_depth"])
        wall = time.perf_counter() - t0
    cpu = children_cpu_seconds() - cpu0
    elapsed = stan_elapsed(fits_dir)
    shutil.rmtree(fits_dir, ignore_errors=True)
    if len(elapsed) != num_chains:
        raise RuntimeError(f"expected Stan timings for {num_chains} chains, found {len(elapsed)}")
    warm = sum(c["Warm-up"] for c in elapsed)
    samp = sum(c["Sampling"] for c in elapsed)
    draws = {}
    for name in PARAM_NAMES:  # fit[name] is (1, draw * chain) with the chain index varying fastest
        draws[name] = np.asarray(fit[name]).reshape(num_samples, num_chains).T
    draws["h"] = np.asarray(fit["h"]).reshape(-1, num_samples, num_chains).transpose(2, 1, 0)
    n_leapfrog = np.asarray(fit["n_leapfrog__"]).ravel()
    workers = getattr(httpstan.services_stub.executor, "_max_workers", None)
    rec = {
        "time_sample_call_s": wall,
        # Chains share the worker pool; the sampling part of the wall time is split off in proportion to
        # Stan's own per-chain timings.
        "time_sampling_s": wall * samp / (warm + samp),
        "time_warmup_s": wall * warm / (warm + samp),
        "time_total_s": wall,
        "stan_chain_elapsed": elapsed,
        "stan_sum_chain_sampling_s": samp,
        "stan_sum_chain_warmup_s": warm,
        "cpu_total_s": cpu,
        # Stan's workers: CPU time split between the phases like the chains' own timings
        "cpu_sampling_s": cpu * samp / (warm + samp),
        "worker_processes": workers,
        "stan_informational_messages": messages["text"].count("Informational Message"),
        "leapfrog_sampling": int(n_leapfrog.sum()),
        "mean_leapfrog_per_draw": float(n_leapfrog.mean()),
        "us_per_leapfrog": 1e6 * samp / n_leapfrog.sum(),
        "divergences": int(np.asarray(fit["divergent__"]).sum()),
        "mean_accept_prob": float(np.asarray(fit["accept_stat__"]).mean()),
        "step_size": sorted({float(s) for s in np.asarray(fit["stepsize__"]).ravel()}),
    }
    rec.update(ess_summary(draws))
    return add_rates(rec)


# ----------------------------------------------------------------------------------------------------------
# what limits speed: gradient cost of the log density
# ----------------------------------------------------------------------------------------------------------
def scan_free_program(model):
    """Illustration only (not bayesvol code): the non-centred path by ``lax.associative_scan``.

    For the linear AR(1) state equation the non-centred recursion is a composition of affine maps, which a
    parallel prefix scan evaluates in O(log T) depth instead of T sequential steps. Same density as
    ``model.program`` with ``parametrization="noncentered"``.
    """

    def program(y):
        params = _base.sample_params(model)
        num_timesteps = y.shape[0]
        z = numpyro.sample("h_std", dist.Normal(0.0, 1.0).expand([num_timesteps]).to_event(1))
        first = model.initial(params)
        shift = params.mu * (1.0 - params.phi) + params.sigma * z
        shift = shift.at[0].set(first.loc + first.scale * z[0])
        slope = jnp.full(num_timesteps, params.phi).at[0].set(0.0)

        def compose(left, right):
            return left[0] * right[0], right[0] * left[1] + right[1]

        h = numpyro.deterministic("h", lax.associative_scan(compose, (slope, shift))[1])
        with numpyro.plate("time", num_timesteps):
            numpyro.sample("y", model.emission(params, h), obs=y)

    return program


def gradient_timing(program, y, num_evals: int, seed: int = 0):
    """Microseconds per value-and-gradient of the potential energy (wall and CPU), and the potential function.

    The gradients run inside one compiled ``fori_loop`` (each step nudges the point by the gradient, so none
    can be skipped), which keeps Python dispatch out of the figure, as inside NUTS. Medians of five calls; the
    CPU figure (this process) is the one to trust when other jobs load the machine.
    """
    info = initialize_model(jax.random.PRNGKey(seed), program, model_args=(y,))
    value_and_grad = jax.value_and_grad(info.potential_fn)

    def loop(z):
        def body(_, carry):
            z, total = carry
            value, grad = value_and_grad(z)
            return jax.tree.map(lambda a, g: a - 1e-12 * g, z, grad), total + value

        return lax.fori_loop(0, num_evals, body, (z, jnp.zeros_like(y, shape=())))

    z0 = info.param_info.z
    compiled = jax.jit(loop).lower(z0).compile()
    block(compiled(z0))
    wall, cpu = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        block(compiled(z0))
        wall.append((time.perf_counter() - t0) / num_evals)
        cpu.append((time.process_time() - c0) / num_evals)
    return {"wall_us": 1e6 * float(np.median(wall)), "cpu_us": 1e6 * float(np.median(cpu))}, info.potential_fn


def microbench(y, num_evals: int) -> dict:
    out = {}
    for par in ("noncentered", "centered"):
        out[f"bayesvol {par} float64"], _ = gradient_timing(bayesvol.models.SV(parametrization=par).program, y,
                                                            num_evals)
    model = bayesvol.models.SV()
    out["associative_scan noncentered float64 (proposal)"], pe_alt = gradient_timing(scan_free_program(model), y,
                                                                                     num_evals)
    pe_ref = initialize_model(jax.random.PRNGKey(0), model.program, model_args=(y,)).potential_fn
    z = initialize_model(jax.random.PRNGKey(3), model.program, model_args=(y,)).param_info.z
    out["associative_scan_max_abs_potential_diff"] = float(abs(pe_alt(z) - pe_ref(z)))
    return out


def microbench_float32(y, num_evals: int) -> dict:
    """Same gradients with x64 switched off (run last: it changes JAX's global precision)."""
    jax.config.update("jax_enable_x64", False)
    try:
        y32 = jnp.asarray(np.asarray(y, dtype=np.float32))
        return {f"bayesvol {par} float32": gradient_timing(bayesvol.models.SV(parametrization=par).program, y32,
                                                           num_evals)[0]
                for par in ("noncentered", "centered")}
    finally:
        jax.config.update("jax_enable_x64", True)


def stan_output_check(y, seed: int, *, num_warmup: int, num_samples: int, thin: int = 10) -> dict:
    """How much of Stan's sampling time is pystan's per-draw output (all of h_std and h, streamed as JSON).

    Two runs with the same seed and warm-up follow the same trajectory; one keeps every draw, the other every
    ``thin``-th, so the difference in sampling time per iteration is the cost of writing a draw.
    """
    posterior, _, model_dir = stan_build(y, seed, fresh=False)
    out = {"T": int(y.shape[0]), "num_warmup": num_warmup, "num_samples": num_samples, "thin": thin}
    for num_thin in (1, thin):
        fits_dir = model_dir / "fits"
        shutil.rmtree(fits_dir, ignore_errors=True)
        cpu0 = children_cpu_seconds()
        with captured_stderr():
            t0 = time.perf_counter()
            posterior.sample(num_chains=2, num_warmup=num_warmup, num_samples=num_samples, num_thin=num_thin)
            wall = time.perf_counter() - t0
        cpu = children_cpu_seconds() - cpu0
        elapsed = stan_elapsed(fits_dir)
        shutil.rmtree(fits_dir, ignore_errors=True)
        samp = sum(c["Sampling"] for c in elapsed)
        warm = sum(c["Warm-up"] for c in elapsed)
        out[f"thin{num_thin}"] = {"wall_s": wall, "cpu_s": cpu, "sum_chain_sampling_s": samp,
                                  "sum_chain_warmup_s": warm,
                                  "ms_per_sampling_iteration": 1e3 * samp / (2 * num_samples),
                                  "cpu_ms_per_sampling_iteration": 1e3 * cpu * samp / (samp + warm) / (2 * num_samples)}
    one, many = out["thin1"], out[f"thin{thin}"]
    for key, name in (("ms_per_sampling_iteration", "time"), ("cpu_ms_per_sampling_iteration", "cpu")):
        out[f"share_of_sampling_{name}_spent_on_output"] = 1 - many[key] / one[key]
    out["loadavg"] = list(os.getloadavg())
    return out


# ----------------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------------
def fmt(x, digits=1):
    return "–" if x is None else f"{x:,.{digits}f}"


def complete(results: dict) -> dict:
    """Derived numbers (CPU-based rates, ratios), recomputed whenever results are written."""
    for rec in results["runs"] + results.get("variants", []):
        if rec.get("sampler") == "stan" and "cpu_sampling_s" not in rec:
            samp, warm = rec["stan_sum_chain_sampling_s"], rec["stan_sum_chain_warmup_s"]
            rec["cpu_sampling_s"] = rec["cpu_total_s"] * samp / (warm + samp)
        add_rates(rec)
    results["ratios"] = ratios(results["runs"], results.get("stan_build", {}).get("time_build_s", 0.0))
    for rec in results.get("api_check", []):
        stan = next((r for r in results["runs"] if r["T"] == rec["T"] and r["sampler"] == "stan"), None)
        if stan:
            rec["ratio_params_vs_stan_total"] = rec["min_ess_params_per_s_end_to_end"] / stan[
                "min_ess_params_per_s_total"]
    return results


def ratios(runs: list[dict], stan_compile_s: float) -> list[dict]:
    out = []
    for T in sorted({r["T"] for r in runs}):
        stan = next((r for r in runs if r["T"] == T and r["sampler"] == "stan"), None)
        if stan is None:
            continue
        stan_with_compile = stan["min_ess_params"] / (stan["time_total_s"] + stan_compile_s)
        for r in runs:
            if r["T"] == T and r["sampler"] == "bayesvol":
                out.append({
                    "T": T, "parametrization": r["parametrization"],
                    "params_sampling": r["min_ess_params_per_s_sampling"] / stan["min_ess_params_per_s_sampling"],
                    "params_total": r["min_ess_params_per_s_total"] / stan["min_ess_params_per_s_total"],
                    "params_total_incl_stan_compile": r["min_ess_params_per_s_total"] / stan_with_compile,
                    "params_cpu_sampling": (r["min_ess_params_per_cpu_s_sampling"]
                                            / stan["min_ess_params_per_cpu_s_sampling"]),
                    "h_sampling": r["min_ess_h_per_s_sampling"] / stan["min_ess_h_per_s_sampling"],
                    "h_total": r["min_ess_h_per_s_total"] / stan["min_ess_h_per_s_total"],
                })
    return out


def markdown(results: dict) -> str:
    cfg, mach = results["config"], results["machine"]
    build = results.get("stan_build", {})
    lines = [
        "# NUTS on the univariate SV model: bayesvol (NumPyro) vs Stan (pystan 3)",
        "",
        f"Generated by `benchmarks/sv_nuts.py` on {results['date']}. {cfg['num_chains']} chains, "
        f"{cfg['num_warmup']} warm-up + {cfg['num_samples']} draws each, target acceptance "
        f"{cfg['target_accept_prob']} and max tree depth {cfg['max_tree_depth']} for both samplers, diagonal mass "
        f"matrix for both. One simulated data set per T (`bayesvol.simulate`, mu={TRUE_PARAMS['mu']}, "
        f"phi={TRUE_PARAMS['phi']}, sigma={TRUE_PARAMS['sigma']}, seed {cfg['seed']}); one sampler seed.",
        "",
        f"Machine: {mach['cpu_model']}, {mach['cpu_count']} cores, {mach['platform']}; JAX: "
        f"{len(mach['jax_devices'])} CPU devices, float64. Load average (1 min) at start "
        f"{fmt(mach['loadavg_start'][0], 2)}, at end {fmt(mach.get('loadavg_end', [None])[0], 2)}; each row below "
        "gives the load when it finished. Other jobs shared the two cores, so wall times are noisy; the CPU-time "
        "columns are less sensitive to that.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in mach["versions"].items()) + ".",
        "",
        f"bayesvol chain method here: `{cfg['bayesvol_chain_method']}` ({len(mach['jax_devices'])} devices < "
        f"{cfg['num_chains']} chains), so its chains run one after another. Stan runs its chains in "
        f"{cfg.get('stan_worker_processes')} worker processes (two at a time). Stan model compile: "
        f"{fmt(build.get('time_build_s'))} s ({'cached build' if build.get('build_was_cached') else 'fresh compile'}).",
        "",
        "## Main results",
        "",
        "*min ESS θ*: minimum bulk-ESS (ArviZ) over (mu, phi, sigma); *min ESS h*: over the T values of h. "
        "*sampling*: wall time of the sampling phase; *total*: compile + warm-up + sampling for bayesvol, the "
        "`sample()` call (warm-up + sampling) for Stan, whose compile is listed above. For Stan the sampling "
        "share of the wall time is taken in proportion to Stan's own per-chain timings. *CPU samp.*: CPU "
        "seconds of the sampling phase (bayesvol: this process; Stan: its worker processes). "
        "*µs/leapfrog*: per-chain sampling time per leapfrog step.",
        "",
        "| T | sampler | min ESS θ (which) | min ESS h | sampling s | total s | ESS θ/s sampling | ESS θ/s total | "
        "ESS h/s sampling | ESS h/s total | CPU samp. s | ESS θ/CPU-s | leapfrog/draw | µs/leapfrog | div | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        lines.append(
            f"| {run['T']} | {run['label']} | {fmt(run['min_ess_params'], 0)} ({run['min_ess_param_name']}) | "
            f"{fmt(run['min_ess_h'], 0)} | {fmt(run['time_sampling_s'])} | {fmt(run['time_total_s'])} | "
            f"{fmt(run['min_ess_params_per_s_sampling'], 1)} | {fmt(run['min_ess_params_per_s_total'], 1)} | "
            f"{fmt(run['min_ess_h_per_s_sampling'], 1)} | {fmt(run['min_ess_h_per_s_total'], 1)} | "
            f"{fmt(run.get('cpu_sampling_s'))} | {fmt(run.get('min_ess_params_per_cpu_s_sampling'), 1)} | "
            f"{fmt(run['mean_leapfrog_per_draw'])} | {fmt(run.get('us_per_leapfrog'), 0)} | {run['divergences']} | "
            f"{fmt(run['loadavg'][0], 1)} |")
    lines += ["", "## Ratios bayesvol / Stan of min-ESS per second (target: at least 1.5)", "",
              "| T | parametrisation | θ sampling | θ total | θ total, Stan compile included | θ per CPU-s sampling | "
              "h sampling | h total |", "|---|---|---|---|---|---|---|---|"]
    for r in results["ratios"]:
        lines.append(f"| {r['T']} | {r['parametrization']} | {fmt(r['params_sampling'], 2)} | "
                     f"{fmt(r['params_total'], 2)} | {fmt(r['params_total_incl_stan_compile'], 2)} | "
                     f"{fmt(r['params_cpu_sampling'], 2)} | {fmt(r['h_sampling'], 2)} | {fmt(r['h_total'], 2)} |")
    if results.get("api_check"):
        lines += ["", "## `bayesvol.sample` end to end (public API check)", "",
                  "Compilation, warm-up, sampling and building the result tree (with the pointwise "
                  "log-likelihood), timed around one call; ratio against Stan's *total* above.", "",
                  "| T | parametrisation | wall s | min ESS θ | min ESS h | ESS θ/s | ESS h/s | ratio θ vs Stan | "
                  "div | load |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["api_check"]:
            lines.append(f"| {r['T']} | {r['parametrization']} | {fmt(r['time_end_to_end_s'])} | "
                         f"{fmt(r['min_ess_params'], 0)} | {fmt(r['min_ess_h'], 0)} | "
                         f"{fmt(r['min_ess_params_per_s_end_to_end'], 1)} | "
                         f"{fmt(r['min_ess_h_per_s_end_to_end'], 1)} | {fmt(r.get('ratio_params_vs_stan_total'), 2)} | "
                         f"{r['divergences']} | {fmt(r['loadavg'][0], 1)} |")
    if results.get("variants"):
        lines += ["", "## Variants (not what `bayesvol.sample` does today)", "",
                  "Run after the main results, while the machine was much more loaded (see *load*): compare "
                  "the CPU columns with the main table rather than wall times. The two chain layouts with the "
                  "same keys give the same draws, hence the same ESS.", "",
                  "| T | variant | min ESS θ | min ESS h | sampling s | CPU samp. s | ESS θ/CPU-s | ESS h/CPU-s | "
                  "leapfrog/draw | div | load |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for run in results["variants"]:
            lines.append(
                f"| {run['T']} | {run['label']} | {fmt(run['min_ess_params'], 0)} | {fmt(run['min_ess_h'], 0)} | "
                f"{fmt(run['time_sampling_s'])} | {fmt(run['cpu_sampling_s'])} | "
                f"{fmt(run['min_ess_params_per_cpu_s_sampling'], 1)} | {fmt(run['min_ess_h_per_cpu_s_sampling'], 1)} | "
                f"{fmt(run['mean_leapfrog_per_draw'])} | {run['divergences']} | {fmt(run['loadavg'][0], 1)} |")
    grads = results.get("gradients") or []
    if grads and isinstance(next(iter(v for k, v in grads[0].items() if k != "T")), dict):
        lines += ["", "## Cost of one log-density gradient (µs)", "",
                  f"Measured {results.get('gradients_date', '')} (load {fmt(results.get('gradients_load'), 1)}), "
                  "gradients looped inside one compiled function; median of five.", "",
                  "| T | log density | CPU µs | wall µs |", "|---|---|---|---|"]
        for g in grads:
            for k, v in g.items():
                if isinstance(v, dict):
                    lines.append(f"| {g['T']} | {k} | {fmt(v['cpu_us'], 0)} | {fmt(v['wall_us'], 0)} |")
    check = results.get("stan_output_check")
    if check:
        one, many = check["thin1"], check[f"thin{check['thin']}"]
        lines += ["", "## How much of Stan's sampling time is output", "",
                  f"T={check['T']}, 2 chains, {check['num_warmup']} warm-up + {check['num_samples']} iterations, "
                  f"same seed, keeping every draw or every {check['thin']}th (same trajectory, less output; load "
                  f"{fmt(check['loadavg'][0], 1)}):", "",
                  "| kept draws | ms per sampling iteration (per chain) | CPU ms per sampling iteration |",
                  "|---|---|---|",
                  f"| all | {fmt(one['ms_per_sampling_iteration'], 2)} | "
                  f"{fmt(one['cpu_ms_per_sampling_iteration'], 2)} |",
                  f"| 1 in {check['thin']} | {fmt(many['ms_per_sampling_iteration'], 2)} | "
                  f"{fmt(many['cpu_ms_per_sampling_iteration'], 2)} |", "",
                  f"Share of Stan's sampling time spent writing draws: "
                  f"{fmt(100 * check['share_of_sampling_time_spent_on_output'], 0)} % (wall), "
                  f"{fmt(100 * check['share_of_sampling_cpu_spent_on_output'], 0)} % (CPU)."]
    lines += ["", "## Interpretation", "", results.get("interpretation", "(see the JSON file for all numbers)"), ""]
    return "\n".join(lines)


def write(results: dict, out_dir: Path, interpretation: str | None) -> None:
    if interpretation:
        results["interpretation"] = Path(interpretation).read_text().strip()
    complete(results)
    (out_dir / "sv_nuts.json").write_text(json.dumps(results, indent=1, default=float))
    (out_dir / "sv_nuts.md").write_text(markdown(results))
    log(f"wrote {out_dir / 'sv_nuts.json'} and {out_dir / 'sv_nuts.md'}")


def measure_gradients(results: dict, data: dict, num_evals: int) -> None:
    results["gradients"] = []
    for T, y in data.items():
        log(f"T={T} gradient micro-benchmarks")
        results["gradients"].append({"T": T, **microbench(y, num_evals)})
    for g, y in zip(results["gradients"], data.values(), strict=True):
        g.update(microbench_float32(y, num_evals))
    results["gradients_date"] = time.strftime("%Y-%m-%d %H:%M")
    results["gradients_load"] = os.getloadavg()[0]


# ----------------------------------------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small T and few draws: a smoke check (~1 min)")
    parser.add_argument("--T", type=int, nargs="+", default=None, help="series lengths (default 1000 2000)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for sv_nuts.json and sv_nuts.md")
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--num-warmup", type=int, default=None, help="default 1000 (quick: 150)")
    parser.add_argument("--num-samples", type=int, default=None, help="default 1000 (quick: 150)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated data and of the samplers")
    parser.add_argument("--no-stan", action="store_true", help="skip Stan")
    parser.add_argument("--api-check", action=argparse.BooleanOptionalAction, default=None,
                        help="also time bayesvol.sample end to end (default: on, off with --quick)")
    parser.add_argument("--variants", action=argparse.BooleanOptionalAction, default=None,
                        help="variant runs at the first T (default: on, off with --quick)")
    parser.add_argument("--stan-output-check", action=argparse.BooleanOptionalAction, default=None,
                        help="measure the share of Stan's sampling time spent on output (default: on, off with "
                             "--quick)")
    parser.add_argument("--fresh-stan-build", action="store_true",
                        help="drop pystan's cached build of this program first, so the compile time is measured")
    parser.add_argument("--interpretation", default=None, help="text file whose content becomes the interpretation")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: rewrite sv_nuts.md (and sv_nuts.json) from the JSON in --out")
    parser.add_argument("--recheck", action="store_true",
                        help="keep the sampler runs in --out; measure again only the gradient costs and the Stan "
                             "output check (quick, for when the first pass ran on a loaded machine)")
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_evals = 200 if args.quick else 2000
    output_check = {"num_warmup": 100 if args.quick else 300, "num_samples": 100 if args.quick else 500}
    if args.render_only or args.recheck:
        results = json.loads((out_dir / "sv_nuts.json").read_text())
        if args.recheck:
            cfg = results["config"]
            data = {T: jnp.asarray(bayesvol.simulate(bayesvol.models.SV(), TRUE_PARAMS, T, seed=cfg["seed"]).y)
                    for T in cfg["T"]}
            log("re-measuring gradient costs")
            measure_gradients(results, data, num_evals)
            if not args.no_stan:
                T = cfg["T"][0]
                log(f"T={T} Stan output check")
                results["stan_output_check"] = stan_output_check(data[T], cfg["seed"], **output_check)
        write(results, out_dir, args.interpretation)
        return

    Ts = args.T or ([200] if args.quick else [1000, 2000])
    api_check = (not args.quick) if args.api_check is None else args.api_check
    run_variants = (not args.quick) if args.variants is None else args.variants
    run_output_check = (not args.quick) if args.stan_output_check is None else args.stan_output_check
    num_warmup = args.num_warmup or (150 if args.quick else 1000)
    num_samples = args.num_samples or (150 if args.quick else 1000)
    num_chains = args.num_chains
    settings = nuts_settings()
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_info(("jax", "jaxlib", "numpyro", "pystan", "httpstan", "arviz-base", "arviz-stats",
                                 "numpy")),
        "config": {"T": Ts, "num_chains": num_chains, "num_warmup": num_warmup, "num_samples": num_samples,
                   "seed": args.seed, "quick": args.quick, "true_params": TRUE_PARAMS,
                   "bayesvol_chain_method": _chain_method(num_chains), **settings},
        "stan_program": STAN_PROGRAM.strip(),
        "stan_build": {},
        "runs": [], "api_check": [], "variants": [], "gradients": [],
    }
    log(f"machine: {results['machine']['cpu_model']}, {os.cpu_count()} cores, {len(jax.devices())} JAX devices; "
        f"bayesvol chain method for {num_chains} chains: {_chain_method(num_chains)}")
    common = {"num_chains": num_chains, "num_warmup": num_warmup, "num_samples": num_samples}

    def report(rec):
        log(f"  min ESS θ {rec['min_ess_params']:.0f}, h {rec['min_ess_h']:.0f}; sampling "
            f"{rec['time_sampling_s']:.1f}s, total {rec['time_total_s']:.1f}s; "
            f"{rec['min_ess_params_per_s_sampling']:.2f} ESS θ/s (sampling)")

    data = {}
    for T in Ts:
        y = jnp.asarray(bayesvol.simulate(bayesvol.models.SV(), TRUE_PARAMS, T, seed=args.seed).y)
        data[T] = y
        for par in ("noncentered", "centered"):
            log(f"T={T} bayesvol {par}: phased NUTS run")
            rec = run_numpyro(bayesvol.models.SV(parametrization=par).program, y, seed=args.seed, **common)
            rec.update(T=T, sampler="bayesvol", parametrization=par, label=f"bayesvol {par}",
                       loadavg=list(os.getloadavg()))
            results["runs"].append(rec)
            report(rec)
        if not args.no_stan:
            fresh = args.fresh_stan_build and T == Ts[0]
            log(f"T={T} Stan: build" + (" (fresh compile)" if fresh else ""))
            posterior, build, model_dir = stan_build(y, args.seed, fresh=fresh)
            if T == Ts[0]:
                results["stan_build"] = build
            log(f"  build {build['time_build_s']:.1f}s (was cached: {build['build_was_cached']}); sampling")
            rec = run_stan(posterior, model_dir, **common)
            rec.update(T=T, sampler="stan", parametrization="noncentered", label="Stan noncentered",
                       build=build, loadavg=list(os.getloadavg()))
            results["config"]["stan_worker_processes"] = rec["worker_processes"]
            results["runs"].append(rec)
            report(rec)
        if api_check:
            for par in ("noncentered", "centered"):
                log(f"T={T} bayesvol.sample {par}: end to end")
                rec = run_bayesvol_api(bayesvol.models.SV(parametrization=par), np.asarray(y), seed=args.seed,
                                       **common)
                rec.update(T=T, parametrization=par, loadavg=list(os.getloadavg()))
                results["api_check"].append(rec)
                log(f"  {rec['time_end_to_end_s']:.1f}s, min ESS θ {rec['min_ess_params']:.0f}, "
                    f"h {rec['min_ess_h']:.0f}")
    if run_variants:
        T = Ts[0]
        y = data[T]
        devices = jax.local_device_count()
        variants = [
            ("noncentered", "vectorized", False, "noncentered, 4 chains vectorized"),
            ("noncentered", "devices", False, f"noncentered, chains over {devices} devices"),
            ("noncentered", "sequential", [PARAM_NAMES], "noncentered, dense mass block (mu, phi, sigma)"),
            ("centered", "devices", False, f"centered, chains over {devices} devices"),
            ("centered", "sequential", [PARAM_NAMES], "centered, dense mass block (mu, phi, sigma)"),
            ("assoc", "sequential", False, "noncentered via associative_scan (proposal)"),
        ]
        for par, layout, dense, label in variants:
            log(f"T={T} variant: {label}")
            program = (scan_free_program(bayesvol.models.SV()) if par == "assoc"
                       else bayesvol.models.SV(parametrization=par).program)
            rec = run_numpyro(program, y, seed=args.seed, layout=layout, dense_mass=dense, **common)
            rec.update(T=T, label=label, layout=layout, loadavg=list(os.getloadavg()))
            results["variants"].append(rec)
            report(rec)
    if run_output_check and not args.no_stan:
        log(f"T={Ts[0]} Stan output check")
        results["stan_output_check"] = stan_output_check(data[Ts[0]], args.seed, **output_check)
    measure_gradients(results, data, num_evals)
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    write(results, out_dir, args.interpretation)


if __name__ == "__main__":
    main()
