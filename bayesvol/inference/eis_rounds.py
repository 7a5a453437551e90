r"""EIS maximum likelihood in rounds for the Wishart SV model: the ``"eis"`` fitter of [`bayesvol.fit`][bayesvol.fit].

Each round fits the EIS sampler at its start and holds it fixed while BFGS maximises the (then smooth)
simulated likelihood; the rounds iterate that map to its fixed point (see `fit_eis_rounds`). The
likelihood is `bayesvol.filters.wishart_methods.eis_loglik`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import bayesvol.inference._optimiser as _optimiser
from bayesvol.filters.wishart_methods import EISKernels, _eis_options, _run_eis
from bayesvol.inference.diagnostics import ConvergenceWarning
from bayesvol.models._base import as_params

__all__ = ["fit_eis_rounds"]

_LOGGER = logging.getLogger(__name__)

_MAX_ROUND_RATIO = 0.95


def _free_parameters(model, params):
    """Unconstrained coordinates (nu, d, then A's k(k+1)/2 free entries) of concrete parameters."""
    transforms = model.param_transforms()
    return np.concatenate([np.atleast_1d(np.asarray(transforms[n].inv(jnp.asarray(getattr(params, n)))))
                           for n in model.param_names])


def _constrained(model, u_flat):
    transforms = model.param_transforms()
    return model.params_type(nu=transforms["nu"](u_flat[0]), d=transforms["d"](u_flat[1]),
                             A=transforms["A"](u_flat[2:]))


@partial(jax.jit, static_argnames=("model", "num_draws", "antithetic"))
def _fixed_kernel_objective(u_flat, model, y, seed, kernels, *, num_draws, antithetic):
    """-(EIS log-likelihood)/T with the kernels fixed, and its gradient, in unconstrained coordinates."""

    def objective(u):
        out = _run_eis(_constrained(model, u), y, seed, kernels, num_draws=num_draws, num_iterations=0,
                       tolerance=0.0, antithetic=antithetic, resample=False)
        value = -out.log_likelihood / y.shape[0]
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    return jax.value_and_grad(objective)(u_flat)


def _round_schedule_step(history, round_tolerance):
    """Decide the start of the next EIS-MLE round from the rounds so far (a fixed-point iteration).

    ``history`` holds one dict per round: ``start`` and ``optimum`` (unconstrained coordinates), ``se`` (their
    approximate standard errors) and ``plain`` (whether the round started at the previous round's optimum).
    Returns ``(next_start, ratio, distance, settled, move)``: the contraction ratio estimated from the last two
    rounds when they form a plain pair (else the last estimate, or NaN), the estimated distance of the last
    round's start from the fixed point in standard errors, ``move / (1 - largest ratio so far)`` (a bound for
    the distance of its optimum, which is about ``ratio`` times that), whether it is below
    ``round_tolerance``, and the last move. After a plain pair the next start is extrapolated along the last
    step by ``ratio / (1 - ratio)`` (Aitken's scalar acceleration of a linearly convergent iteration).
    """
    last = history[-1]
    residual = (last["optimum"] - last["start"]) / last["se"]
    move = float(np.max(np.abs(residual)))
    ratio = next((h["ratio"] for h in reversed(history[:-1]) if np.isfinite(h.get("ratio", np.nan))), np.nan)
    fresh = False
    if last["plain"] and len(history) >= 2:
        previous = history[-2]
        before = (previous["optimum"] - previous["start"]) / last["se"]
        denominator = float(before @ before)
        if denominator > 0.0:
            ratio, fresh = float(np.clip((residual @ before) / denominator, 0.0, _MAX_ROUND_RATIO)), True
    last["ratio"] = ratio
    # The iteration is only roughly linear (coordinates contract at different rates), so the distance uses
    # the largest ratio estimated so far: a conservative bound.
    ratios = np.array([h.get("ratio", np.nan) for h in history])
    largest = np.max(ratios[np.isfinite(ratios)]) if np.any(np.isfinite(ratios)) else np.nan
    distance = move / (1.0 - largest) if np.isfinite(largest) else np.inf
    settled = bool(distance < round_tolerance)
    next_start = last["optimum"]
    if fresh and not settled:
        next_start = last["optimum"] + ratio / (1.0 - ratio) * (last["optimum"] - last["start"])
    return next_start, ratio, distance, settled, move


def _check_round_arguments(options, max_rounds, round_tolerance, se_differences):
    if options.get("resample"):
        raise ValueError("fit(method='eis') needs the plain (smooth) EIS estimate; resample=True is piecewise "
                         "constant in the parameters")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ValueError(f"max_rounds must be a positive integer, got {max_rounds!r}")
    if not (isinstance(round_tolerance, (int, float)) and round_tolerance > 0.0):
        raise ValueError(f"round_tolerance must be a positive number of standard errors, got {round_tolerance!r}")
    if se_differences not in ("forward", "central"):
        raise ValueError(f"se_differences must be 'forward' or 'central', got {se_differences!r}")


def _best_start(model, values, data, start, num_starts, seed, static):
    """Unconstrained coordinates of the start (given or generic) with the highest EIS log-likelihood."""
    if start is None:
        starts = list(model.start_values(values))
    else:
        starts = [start] if isinstance(start, Mapping) else list(start)
    starts = [as_params(model, s) for s in starts[: num_starts or len(starts)]]
    for s in starts:
        model.check_parameters(s)
    at_starts = [float(_run_eis(s, data, seed, **static).log_likelihood) for s in starts]
    return _free_parameters(model, starts[int(np.nanargmax(at_starts))])


def fit_eis_rounds(model, y, *, fit, start=None, num_starts=None, maxiter=2000, gtol=1e-5, warn=True, max_rounds=20,
                   round_tolerance=0.2, se_differences="forward", rescale=True, **options):
    r"""EIS maximum likelihood in rounds: optimise with the EIS sampler fixed, refit the sampler, repeat.

    Round r fits the kernels $(c_t, C_t)$ at its start $s_r$ (warm-started from the last ones)
    and holds them fixed, so the objective $\hat L(\theta; c, C)$ is one smooth function (common
    random numbers, an unbiased likelihood estimate at every $\theta$) with an exact gradient; each
    evaluation is a single simulation pass, and the kernels are arguments of one compiled function, so rounds
    do not recompile. BFGS starts from the previous round's inverse-Hessian approximation. The estimate is
    the fixed point $\theta^* = G(\theta^*)$ of the map $G(s) = \arg\max_\theta \hat L(\theta;
    c(s), C(s))$; with the same random numbers in every round, $G$ is deterministic and the rounds
    converge linearly (kernels fitted at $s$ favour $\theta$ near $s$, which makes the
    steps shrink by a ratio $\rho < 1$ per round rather than stop at once).

    Rule. With the move $m_r = \max_j |G(s_r) - s_r|_j / \mathrm{se}_j$ (unconstrained coordinates,
    approximate standard errors from the BFGS inverse Hessian) and $\rho$ estimated from two
    consecutive plain rounds ($s_{r} = G(s_{r-1})$; the largest such estimate so far, to be safe),
    the start $s_r$ is about $m_r / (1 - \rho)$ standard errors from the fixed point and the
    estimate $G(s_r)$ about $\rho$ times that; the rounds stop (``settled``) when the former
    (a bound for the latter) is below ``round_tolerance``, so at least two rounds run. After each plain
    pair the next start is extrapolated by $\rho/(1-\rho)$ times the last step (Aitken's
    acceleration). ``converged`` in the result means the last optimiser run converged *and* the rounds
    settled; stopping on ``max_rounds`` gives a warning.
    A last call of the ordinary optimiser with the final kernels fixed (it starts at the optimum) gives the
    standard errors (Hessian of the fixed-kernel estimate from differences of its exact gradient) and
    diagnostics. ``se_differences="forward"`` (default) takes forward differences, p + 1 gradient calls for p
    free parameters instead of the 2p of ``"central"``: with steps of 1e-6 max(|u|, 1) in float64 their
    O(h) truncation error is of relative order 1e-6 in the Hessian (times its condition number in the
    standard errors), far below the Monte Carlo uncertainty of the standard errors themselves (the
    Hessian of a simulated likelihood differs between seeds by much more), and the stage costs half as
    much, which matters at k = 10 (57 parameters, about 10 s per gradient). The default ``max_rounds=20``
    leaves room for contraction ratios near 0.9 with the extrapolation. ``diagnostics`` records
    ``eis_rounds``, ``eis_settled``, ``eis_last_move_in_se``, ``eis_distance_in_se``, ``eis_round_ratio``
    and ``eis_optimiser_iterations``. EIS options (``num_draws``, ``seed``, ...) as for
    `bayesvol.filters.wishart_methods.eis_loglik`.

    The rounds run in the units of ``y`` (``rescale`` is accepted for [`bayesvol.fit`][bayesvol.fit]'s signature and not
    applied: the fitted kernels belong to the data as given), so ``result.data_scale`` is ``None``.
    """
    del rescale
    _check_round_arguments(options, max_rounds, round_tolerance, se_differences)
    if "kernels" in options:
        return fit(model, y, "eis", start=start, num_starts=num_starts, maxiter=maxiter, gtol=gtol, warn=warn,
                   direct=True, rescale=False, se_differences=se_differences, **options)
    model = model.bind_data(y)
    values = model.validate_data(y).values
    data = jnp.asarray(values)
    seed, static = _eis_options(**options)
    u = _best_start(model, values, data, start, num_starts, seed, static)
    kernels, hess_inv, history, iterations, plain = None, None, [], 0, True
    ratio, distance, move, settled = np.nan, np.inf, np.inf, False
    seed_array = jnp.asarray(seed)

    began = time.perf_counter()
    while len(history) < max_rounds and not settled:
        out = _run_eis(_constrained(model, jnp.asarray(u)), data, seed, kernels, **static)
        if not np.isfinite(float(out.log_likelihood)) and not plain:
            # the extrapolated start left the region where the simulated likelihood is finite: step back
            u, plain = history[-1]["optimum"], True
            out = _run_eis(_constrained(model, jnp.asarray(u)), data, seed, kernels, **static)
        kernels = (out.c, out.C)
        # Not fit(): the round starts BFGS from the last inverse Hessian and needs the new one back, and its
        # kernels are an argument of one compiled objective (as a likelihood option they would recompile).
        scipy_fun = _optimiser.scipy_objective(
            lambda x, kernels=kernels: _fixed_kernel_objective(x, model, data, seed_array, kernels,
                                                               num_draws=static["num_draws"],
                                                               antithetic=static["antithetic"]))
        res = _optimiser.bfgs(scipy_fun, u, maxiter=maxiter, gtol=gtol, hess_inv0=hess_inv)
        iterations += int(res.nit)
        hess_inv = 0.5 * (res.hess_inv + res.hess_inv.T)
        se_u = np.sqrt(np.maximum(np.diag(hess_inv), 1e-300) / data.shape[0])
        history.append({"start": np.asarray(u, dtype=np.float64), "optimum": np.asarray(res.x, dtype=np.float64),
                        "se": se_u, "plain": plain})
        next_start, ratio, distance, settled, move = _round_schedule_step(history, round_tolerance)
        optimum = _constrained(model, jnp.asarray(res.x))
        _LOGGER.info("EIS-MLE round %d: %.1f s, %d BFGS iterations, move %.3g SE, ratio %.3g, distance %.3g SE, "
                     "d %.4f, nu %.3f, log-likelihood %.3f", len(history), time.perf_counter() - began, res.nit,
                     move, ratio, distance, float(optimum.d), float(optimum.nu), -res.fun * data.shape[0])
        plain = bool(np.array_equal(next_start, res.x))
        u = next_start
    theta = _constrained(model, jnp.asarray(history[-1]["optimum"]))
    rounds_done = time.perf_counter()
    result = fit(model, y, "eis", start={n: np.asarray(getattr(theta, n)) for n in model.param_names},
                 maxiter=maxiter, gtol=gtol, warn=False, direct=True, rescale=False, kernels=EISKernels(*kernels),
                 se_differences=se_differences, **options)
    _LOGGER.info("EIS-MLE: final optimisation, standard errors and diagnostics in %.1f s",
                 time.perf_counter() - rounds_done)
    if not result.converged and warn:
        warnings.warn(f"EIS maximum likelihood did not converge: {result.message}", ConvergenceWarning,
                      stacklevel=3)
    if not settled and warn:
        warnings.warn(f"the EIS-MLE rounds stopped on their limit (max_rounds={max_rounds}): the estimate is about "
                      f"{distance:.3g} standard errors from the fixed point of the rounds (last move {move:.3g}, "
                      f"contraction ratio {ratio:.3g}), above round_tolerance={round_tolerance}; allow more rounds",
                      ConvergenceWarning, stacklevel=3)
    diagnostics = dict(result.diagnostics, eis_rounds=len(history), eis_settled=settled, eis_last_move_in_se=move,
                       eis_distance_in_se=distance, eis_round_ratio=ratio, eis_optimiser_iterations=iterations)
    return dataclasses.replace(result, converged=bool(result.converged and settled), options=dict(options),
                               diagnostics=diagnostics)
