"""Maximum likelihood for many series at once: BFGS written in JAX, vmapped over lanes fed by a queue.

Each series is estimated as [`bayesvol.fit`][bayesvol.fit] estimates one (same registered likelihood, same
unconstrained space from the prior supports, same gradient tolerance, same standard errors from the exact
Hessian and scores), but the optimiser is written in JAX so that many series advance in one compiled step:
each lane evaluates the objective and its gradient once per step, at a trial point of a backtracking (Armijo)
line search along the BFGS direction, and either accepts it (and updates the inverse Hessian) or halves the
step for the next one; the steps are vmapped over up to ``block_width`` lanes. A lane whose series has
converged takes the next series from a queue, so the work follows the mean number of iterations, not that of
the slowest series. The first inverse Hessian of each series is the inverse outer product of its scores at
the start value. All derivatives are JAX transformations of the model's registered likelihood.
"""

from __future__ import annotations

import warnings
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax import lax

import bayesvol.inference._scaling as _scaling
import bayesvol.inference.registry as registry
from bayesvol._validation import ConvergenceWarning, as_panel_values
from bayesvol.inference._problem import Problem, labels, objective, options_key
from bayesvol.inference.results import BatchMLEResult
from bayesvol.inference.standard_errors import (
    loglik_derivatives_one,
    stacked_boundaries,
    stacked_covariances,
    standard_errors,
)
from bayesvol.models import _base, _observation

__all__ = ["BatchMLEResult", "fit_batch"]

_ARMIJO = 1e-4
_MAX_HALVINGS = 40
# Smallest eigenvalue kept when inverting a Hessian approximation, relative to the largest.
_EIGENVALUE_FLOOR = 1e-8
# Observations (time steps x series) per block of the standard-error stage: its forward-over-reverse
# Hessian carries one tangent per parameter through the reverse pass, so its working set is several times
# that of the optimiser's; at T = 1000, blocks of 32 series took half the time per series of blocks of 64.
_DERIVATIVE_BLOCK_OBSERVATIONS = 32_000
# Steps per loop iteration of a sequential recursion (lax.scan unroll) in the BFGS programs: vmapped over 64
# series, a value and gradient of GJR-skew-t at T = 1000 took 4.2 ms of CPU unrolled by 8 against 5.3 ms
# (benchmarks/garch_recursion.py); a single series of T = 5000 did not gain, so other fits keep 1.
_BFGS_SCAN_UNROLL = 8


def _as_panel(model, y):
    # Real numbers, a sorted date index and representable squares are checked on the whole panel first.
    values, index, names = as_panel_values(y)
    if values.ndim != 2:
        raise ValueError(f"a batch fit needs a 2-D array (time x series); got shape {values.shape}")
    names = names if names is not None else list(range(values.shape[1]))
    columns = []
    for j, name in enumerate(names):
        series = pd.Series(values[:, j], index=index) if index is not None else values[:, j]
        try:
            columns.append(model.validate_data(series).values)
        except ValueError as err:
            raise ValueError(f"series {name!r} (column {j}): {err}") from None
    return names, np.stack(columns, axis=1)


@partial(jax.jit, static_argnums=0)
def _unconstrain_stacked(problem: Problem, stacked: dict):
    """Unconstrained flat vectors (K, N, p) of start values stacked per name as (K, N) arrays."""
    def one(values):
        return problem.ravel(problem.model.to_unconstrained(problem.model.params_type(**values)))

    return jax.vmap(jax.vmap(one))(stacked)


@partial(jax.jit, static_argnums=0)
def _start_objectives(problem: Problem, u_starts, y):
    """Objective at each start (K) for each series (N): ``u_starts`` is (K, N, p), ``y`` is (T, N)."""
    per_series = jax.vmap(lambda u, y_i: objective(problem, u, y_i), in_axes=(0, 1))
    return jax.vmap(lambda u_k: per_series(u_k, y))(u_starts)


def _bfgs_one_step(problem, y_i, gtol, state):
    """One trial point of a BFGS iteration for one series: one value and gradient, then accept or backtrack.

    The state carries the current step length and the number of halvings, so the backtracking (Armijo)
    line search runs across calls: each call evaluates the objective and its gradient once, at
    ``u + step * direction``. An accepted trial completes the iteration (its gradient is the one the
    inverse-Hessian update needs, so nothing is evaluated twice); a rejected one halves the step for the
    next call. Under ``vmap`` every lane then costs one value-and-gradient per call, whereas a line search
    run to completion inside the call makes all lanes wait for the lane with the most halvings.
    """
    u, value, grad, inv_hessian, step, halvings, done, iterations = state
    direction = -inv_hessian @ grad
    # Guard against a direction that does not descend (rounding): restart from steepest descent.
    restart = jnp.dot(grad, direction) >= 0.0
    inv_hessian = jnp.where(restart, jnp.eye(u.shape[0]), inv_hessian)
    direction = jnp.where(restart, -grad, direction)
    slope = jnp.dot(grad, direction)
    s = step * direction
    value_new, grad_new = jax.value_and_grad(objective, argnums=1)(problem, u + s, y_i)
    accepted = jnp.isfinite(value_new) & (value_new <= value + _ARMIJO * step * slope)
    found = accepted & jnp.all(jnp.isfinite(grad_new))
    change = grad_new - grad
    curvature = jnp.dot(s, change)
    rho = 1.0 / jnp.where(curvature > 0.0, curvature, 1.0)
    left = jnp.eye(u.shape[0]) - rho * jnp.outer(s, change)
    updated = left @ inv_hessian @ left.T + rho * jnp.outer(s, s)
    # Skip the update unless the curvature condition holds (keeps the inverse Hessian positive definite).
    good_curvature = curvature > 1e-12 * jnp.linalg.norm(s) * jnp.linalg.norm(change)
    moving = found & ~done
    u = jnp.where(moving, u + s, u)
    value = jnp.where(moving, value_new, value)
    grad = jnp.where(moving, grad_new, grad)
    inv_hessian = jnp.where(moving & good_curvature, updated, jnp.where(moving, inv_hessian, state[3]))
    # A trial with a finite value that passes the Armijo test but has a non-finite gradient, or a line search
    # that has halved the step _MAX_HALVINGS - 1 times without a decrease, stalls the series: it stops and is
    # judged by its gradient.
    stalled = (accepted & ~found) | (~accepted & (halvings + 1 >= _MAX_HALVINGS))
    finished_iteration = ~done & (moving | stalled)
    done_new = done | (moving & (jnp.max(jnp.abs(grad)) < gtol)) | stalled
    step = jnp.where(moving, 1.0, 0.5 * step)
    halvings = jnp.where(moving, 0, halvings + 1)
    return (u, value, grad, inv_hessian, step, halvings, done_new,
            iterations + finished_iteration.astype(iterations.dtype))


@partial(jax.jit, static_argnums=0)
def _bfgs_starts(problem: Problem, u0, y):
    """BFGS start for every column: objective, gradient and first inverse Hessian at ``u0`` (N, p).

    The first inverse Hessian is the inverse mean outer product of the per-observation scores (by the
    information equality an approximation of the Hessian of the mean negative log-likelihood, positive
    semi-definite by construction; small eigenvalues are floored) rather than a scaled identity: one
    forward pass with the scores gives it together with the gradient, and it cuts the BFGS iterations
    about threefold.
    """

    def one(u_i, y_i):
        def terms_twice(v):
            terms = problem.pointwise(problem.constrain(v), y_i)
            return terms, terms

        scores, terms = jax.jacfwd(terms_twice, has_aux=True)(u_i)
        num_obs = y_i.shape[0]
        value = -jnp.sum(terms) / num_obs
        value = jnp.where(jnp.isfinite(value), value, jnp.inf)
        grad = -jnp.sum(scores, axis=0) / num_obs
        outer = scores.T @ scores / num_obs
        eigenvalues, eigenvectors = jnp.linalg.eigh(0.5 * (outer + outer.T))
        floor = jnp.maximum(_EIGENVALUE_FLOOR * jnp.max(eigenvalues), 1e-12)
        inverse = (eigenvectors / jnp.maximum(eigenvalues, floor)) @ eigenvectors.T
        inverse = jnp.where(jnp.all(jnp.isfinite(inverse)), inverse, jnp.eye(u_i.shape[0]))
        return value, grad, inverse

    return jax.vmap(one, in_axes=(0, 1))(u0, y)


def _bfgs_queue_impl(problem: Problem, u0, value0, grad0, inv_hessian0, maxiter: int, num_lanes: int, y, gtol):
    """BFGS for every column of ``y`` (T, N) from the starts of `_bfgs_starts`, on ``num_lanes`` lanes.

    The lanes run one vmapped BFGS iteration at a time; a lane whose series has converged (or stalled, or
    used ``maxiter`` iterations) stores the result and takes the next series from the queue. The work is
    then about the total number of iterations over the series divided by the number of lanes, instead of
    the number of series times the iterations of the slowest one, as it would be if all series moved in
    step. Returns the unconstrained estimates, gradients and iteration counts, each (N, ...).
    """
    num_series = y.shape[1]
    step = jax.vmap(lambda y_i, state: _bfgs_one_step(problem, y_i, gtol, state), in_axes=(1, 0))

    def load(series):
        """Lane states for the given series (an index of N or more gives an idle lane)."""
        valid = series < num_series
        j = jnp.minimum(series, num_series - 1)
        done = ~valid | (jnp.max(jnp.abs(grad0[j]), axis=1) < gtol)
        zeros = jnp.zeros(series.shape, dtype=jnp.int32)
        return (u0[j], value0[j], grad0[j], inv_hessian0[j], jnp.ones(series.shape), zeros, done, zeros)

    def cond(carry):
        lanes, _, _, _, _, _, loops = carry
        return jnp.any(lanes < num_series) & (loops < maxiter * _MAX_HALVINGS * (num_series // num_lanes + 2))

    def body(carry):
        lanes, state, next_series, u_out, grad_out, iterations_out, loops = carry
        active = lanes < num_series
        y_lanes = jnp.take(y, jnp.minimum(lanes, num_series - 1), axis=1)
        state = step(y_lanes, state)
        u, _, grad, _, _, _, done, iterations = state
        done = done | (iterations >= maxiter)
        finished = active & done
        # Store the finished series' results (the others write out of range, which is dropped).
        target = jnp.where(finished, lanes, num_series)
        u_out = u_out.at[target].set(u, mode="drop")
        grad_out = grad_out.at[target].set(grad, mode="drop")
        iterations_out = iterations_out.at[target].set(iterations, mode="drop")
        # Finished lanes take the next series in order; past the end of the queue they fall idle.
        rank = jnp.cumsum(finished) - 1
        incoming = jnp.where(finished, next_series + rank, num_series)
        fresh = load(incoming)
        state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(finished.reshape((-1,) + (1,) * (old.ndim - 1)), new, old), fresh,
            state[:6] + (done,) + state[7:])
        lanes = jnp.where(finished, jnp.minimum(incoming, num_series), lanes)
        return lanes, state, next_series + jnp.sum(finished), u_out, grad_out, iterations_out, loops + 1

    lanes = jnp.arange(num_lanes)
    carry = (lanes, load(lanes), jnp.asarray(num_lanes), u0, grad0, jnp.zeros(num_series, dtype=jnp.int32),
             jnp.asarray(0))
    _, _, _, u_out, grad_out, iterations_out, _ = lax.while_loop(cond, body, carry)
    return u_out, grad_out, iterations_out


_bfgs_queue = jax.jit(_bfgs_queue_impl, static_argnums=(0, 5, 6))


@lru_cache(maxsize=32)
def _bfgs_queue_per_device(problem: Problem, maxiter: int, num_lanes: int):
    """`_bfgs_queue` mapped over host devices (``jax.pmap``): one queue of series per device."""
    return jax.pmap(lambda u0, value0, grad0, inv_hessian0, y, gtol: _bfgs_queue_impl(
        problem, u0, value0, grad0, inv_hessian0, maxiter, num_lanes, y, gtol), in_axes=(0, 0, 0, 0, 0, None))


def _queue_on_devices(problem: Problem, u0, starts, maxiter: int, num_lanes: int, y, gtol: float):
    """Run the BFGS queue, the series split into one queue per host device when there are several.

    XLA runs one program on one core; with several host devices (bayesvol exposes one per core) the series
    are dealt into equal contiguous chunks (the last padded by repeating its last series, whose results are
    dropped) and each device runs the queue on its chunk at the same time. Returns numpy arrays.
    """
    num_series = y.shape[1]
    chunks = min(jax.local_device_count(), -(-num_series // num_lanes))
    if chunks <= 1:
        return [np.asarray(v) for v in _bfgs_queue(problem, jnp.asarray(u0), *(jnp.asarray(v) for v in starts),
                                                   maxiter, num_lanes, jnp.asarray(y), gtol)]
    per_chunk = -(-num_series // chunks)
    index = np.minimum(np.arange(chunks * per_chunk), num_series - 1).reshape(chunks, per_chunk)
    y_chunks = np.moveaxis(np.asarray(y)[:, index], 1, 0)  # (chunks, T, per_chunk)
    outputs = _bfgs_queue_per_device(problem, maxiter, num_lanes)(
        *(np.asarray(v)[index] for v in (u0, *starts)), y_chunks, gtol)
    return [np.asarray(v).reshape((chunks * per_chunk,) + v.shape[2:])[:num_series] for v in outputs]


@partial(jax.jit, static_argnums=0)
def _batch_derivatives(problem: Problem, u, y):
    """Natural parameters, total log-likelihood, Hessian and scores for every series."""

    def one(u_i, y_i):
        theta = problem.ravel(problem.constrain(u_i)._asdict())
        return (theta,) + loglik_derivatives_one(problem, theta, y_i)

    return jax.vmap(one, in_axes=(0, 1))(u, y)


def _in_blocks(fn, per_series, y, width: int):
    """``fn(per_series_block, y_block)`` over blocks of ``width`` columns, outputs concatenated along series.

    Every block has the same width (the last one is padded by repeating its last column, whose results are
    dropped), so the compiled program is reused. Narrow blocks keep the arrays of the likelihood and its
    reverse pass in cache, and each block's optimiser stops when its own series have converged instead of
    waiting for the slowest series of the whole panel.
    """
    num_series = y.shape[1]
    outputs = []
    for first in range(0, num_series, width):
        columns = np.minimum(np.arange(first, first + width), num_series - 1)
        block = fn(jnp.asarray(per_series[columns]), jnp.asarray(y[:, columns]))
        outputs.append([np.asarray(v)[: num_series - first] for v in block])
    return [np.concatenate(parts, axis=0) for parts in zip(*outputs, strict=True)]


@partial(jax.jit, static_argnums=0)
def _user_map(problem: Problem, theta, scale):
    """Estimates in the user's units and the Jacobians of the map, for every series (``theta`` (N, p))."""
    def one(theta_i, scale_i):
        return _scaling.to_user_flat(problem, theta_i, scale_i)

    return jax.vmap(one)(theta, scale), jax.vmap(jax.jacfwd(one))(theta, scale)


def _to_user_units(problem: Problem, theta, covs, robust_covs, loglik, scale, observed):
    """Estimates, covariances (delta method) and log-likelihoods (``- n_j log s_j``) in the user's units."""
    theta_user, jac = (np.asarray(v) for v in _user_map(problem, jnp.asarray(theta), jnp.asarray(scale)))

    def sandwich(cov):
        return np.einsum("npq,nqr,nsr->nps", jac, cov, jac)

    return theta_user, sandwich(covs), sandwich(robust_covs), loglik - observed * np.log(scale)


def fit_batch(model, y, method: str = "exact", *, start=None, num_starts: int | None = None, maxiter: int = 500,
              gtol: float = 1e-5, warn: bool = True, block_width: int = 64, rescale: bool = True,
              stationary: bool = True, **options) -> BatchMLEResult:
    """Maximum likelihood for every column of a panel of series, with one compiled BFGS over a queue of series.

    Called by [`bayesvol.fit`][bayesvol.fit] when ``y`` is 2-D (time x series) and the model is univariate.

    Parameters
    ----------
    model : bayesvol model
        A univariate model with a differentiable registered likelihood (e.g. [`GARCH`][bayesvol.models.GARCH]).
    y : pandas.DataFrame or 2-D array_like
        One series per column, all of the same length (no missing values).
    method : str
        Likelihood method, ``"exact"`` for the GARCH family.
    start : dict or list of dict, optional
        Start values shared by all series; by default each series' own ``model.start_values``. The start
        with the best log-likelihood is kept for each series.
    num_starts : int, optional
        Use at most this many start values per series.
    maxiter : int
        BFGS iterations at most.
    gtol : float
        Convergence when the largest gradient entry of the mean negative log-likelihood (in the
        unconstrained space) falls below ``gtol``, as in [`bayesvol.fit`][bayesvol.fit].
    warn : bool
        Warn ([`ConvergenceWarning`][bayesvol.ConvergenceWarning]) when some series do not converge.
    block_width : int
        Series optimised together in one vmapped program; the panel is processed block by block (the same
        compiled program for every block). Blocks of a few dozen series keep the working set in cache and
        let a block stop as soon as its own series have converged.
    rescale : bool
        Fit each series divided by its standard deviation and map the results back, as [`bayesvol.fit`][bayesvol.fit]
        does (estimates by the model's ``rescale_params``, covariances by the delta method, the log-likelihood
        shifted by ``-T log s``).
    stationary : bool
        Restrict the estimates to the covariance-stationary region (``False``: pass the model's
        ``nonstationary_variant()``, as [`bayesvol.fit`][bayesvol.fit] does).
    **options
        Passed to the likelihood method.

    Returns
    -------
    BatchMLEResult

    Examples
    --------
    >>> import numpy as np, bayesvol
    >>> model = bayesvol.models.GARCH()
    >>> params = {"mu": 0.0, "omega": 0.05, "alpha": 0.08, "beta": 0.9}
    >>> panel = np.column_stack([bayesvol.simulate(model, params, 1000, seed=s).y for s in range(4)])
    >>> result = bayesvol.fit(model, panel)
    >>> result.params.shape
    (4, 4)
    >>> bool(result.converged.all())
    True
    """
    row = registry.lookup(model, method)
    differentiable = row.differentiable
    if int(block_width) < 1:
        raise ValueError(f"block_width must be a positive number of series, got {block_width!r}")
    if not differentiable:
        raise ValueError(f"batch estimation needs a differentiable likelihood; {method!r} is not")
    names_series, values = _as_panel(model, y)
    num_series = values.shape[1]
    transforms = model.param_transforms()
    names = model.param_names

    if start is None:
        per_series = [list(model.start_values(values[:, j])) for j in range(num_series)]
    else:
        shared = [start] if isinstance(start, dict) else list(start)
        per_series = [shared] * num_series
    per_series = [s[: num_starts or len(s)] for s in per_series]
    if not all(per_series):
        raise ValueError("no start values")
    num_candidates = max(len(s) for s in per_series)
    # Pad shorter candidate lists with their first start so every series has the same number.
    per_series = [s + [s[0]] * (num_candidates - len(s)) for s in per_series]
    template = _base.as_params(model, per_series[0][0])
    problem = Problem(model=model, method=method, loglik=row.loglik,
                      free_shapes=tuple(tuple(jnp.shape(transforms[n].inv(jnp.asarray(getattr(template, n)))))
                                         for n in names),
                      shapes=tuple(tuple(jnp.shape(getattr(template, n))) for n in names),
                      options=options_key(options), stationary=bool(stationary))

    # Stack the candidates name by name (K, N) and map them to the unconstrained space in one call.
    stacked = {n: np.asarray([[per_series[j][k][n] for j in range(num_series)] for k in range(num_candidates)],
                             dtype=np.float64) for n in names}
    priors = model.prior_distributions()
    for n in names:
        outside = ~np.asarray(getattr(priors, n).support(jnp.asarray(stacked[n])))
        if outside.any():
            k, j = np.argwhere(outside)[0][:2]
            raise ValueError(f"start value {n}={stacked[n][k, j]} for series {names_series[j]!r} is outside its "
                             f"support {getattr(priors, n).support}")
    scale = _scaling.data_scale(model, values) if rescale else None
    if scale is not None and (np.ndim(scale) != 1 or model.rescale_params(template, float(scale[0])) is None):
        scale = None
    if scale is not None:
        # Standardise every series by its own scale: the starts move with the hook, the data column by column.
        moved = model.rescale_params(model.params_type(**stacked), 1.0 / scale[None, :])
        stacked = {n: np.asarray(getattr(moved, n), dtype=np.float64) for n in names}
        values = values / scale[None, :]
    u_starts = np.asarray(_unconstrain_stacked(problem, {n: jnp.asarray(v) for n, v in stacked.items()}))
    y_panel = jnp.asarray(values)
    objectives = np.asarray(_start_objectives(problem, jnp.asarray(u_starts), y_panel))  # (K, N)
    finite = np.isfinite(objectives)
    if not finite.any(axis=0).all():
        bad = [names_series[j] for j in np.flatnonzero(~finite.any(axis=0))]
        raise ValueError(f"the log-likelihood is not finite at any start value for series {bad}; give start "
                         "values inside the support of the data")
    best = np.argmin(np.where(finite, objectives, np.inf), axis=0)
    u0 = jnp.asarray(u_starts[best, np.arange(num_series)])

    starts = _in_blocks(lambda u_block, y_block: _bfgs_starts(problem, u_block, y_block), np.asarray(u0), values,
                        min(int(block_width), num_series))
    # The optimiser's programs are traced with the sequential recursions unrolled (only here: see
    # _BFGS_SCAN_UNROLL).
    with _observation.scan_unroll(_BFGS_SCAN_UNROLL):
        u_hat, grad, iterations = _queue_on_devices(problem, np.asarray(u0), starts, int(maxiter),
                                                    min(int(block_width), num_series), values, float(gtol))
    derivative_width = max(1, min(int(block_width), num_series, _DERIVATIVE_BLOCK_OBSERVATIONS // values.shape[0]))
    theta, loglik, hessians, scores = _in_blocks(lambda u_block, y_block: _batch_derivatives(problem, u_block, y_block),
                                                 u_hat, values, derivative_width)
    grad_max = np.max(np.abs(grad), axis=1)
    converged = grad_max < 10 * gtol  # the same acceptance as bayesvol.fit's BFGS

    covs, robust_covs = stacked_covariances(hessians, scores)
    if scale is not None:
        theta, covs, robust_covs, loglik = _to_user_units(problem, theta, covs, robust_covs, loglik, scale,
                                                          # a density of the data shifts by -n_j log s_j
                                                          np.sum(np.isfinite(values), axis=0) * row.density_of_data)
    se = standard_errors(covs)
    robust_se = standard_errors(robust_covs)
    u_hat = np.asarray(u_hat)
    at_boundary = stacked_boundaries(problem, u_hat, scores, names_series)

    def frame(values_2d):
        return pd.DataFrame(values_2d, index=names_series, columns=list(names))

    result = BatchMLEResult(
        model=model, method=method, params=frame(theta), se=frame(se), robust_se=frame(robust_se),
        loglik=pd.Series(loglik, index=names_series, name="loglik"),
        converged=pd.Series(converged, index=names_series, name="converged"),
        iterations=pd.Series(np.asarray(iterations), index=names_series, name="iterations"),
        nobs=int(values.shape[0]), at_boundary=at_boundary,
        covs=covs, robust_covs=robust_covs,
        labels=labels(model, problem.shapes), options=dict(options),
        data_scale=None if scale is None else pd.Series(scale, index=names_series, name="data_scale"))
    if warn and not converged.all():
        failed = [names_series[j] for j in np.flatnonzero(~converged)]
        warnings.warn(f"maximum likelihood for {model!r} ({method}) did not converge for {len(failed)} of "
                      f"{num_series} series: {failed[:10]}", ConvergenceWarning, stacklevel=3)
    return result
