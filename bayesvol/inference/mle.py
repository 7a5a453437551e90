"""Maximum likelihood for one series: one optimiser and one result type for every model and likelihood method.

The likelihood methods are the rows of `bayesvol.inference.registry`: each maps
``(model, params, y, **options)`` to the pointwise log-likelihood (a JAX array, one value per time step), a
pure JAX function of ``params`` so that gradients and Hessians come from autodiff. Simulated likelihoods
(particle filter, EIS) keep their random numbers fixed through ``seed`` (common random numbers), so the
optimiser sees one deterministic surface. Standard errors and boundary flags come from
`bayesvol.inference.standard_errors`, shared with the batch fit.
"""

from __future__ import annotations

import numbers
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import bayesvol._validation as _validation
import bayesvol.inference._optimiser as _optimiser
import bayesvol.inference._scaling as _scaling
import bayesvol.inference.likelihood as likelihood
import bayesvol.inference.registry as registry
import bayesvol.inference.standard_errors as se_
from bayesvol._validation import ConvergenceWarning
from bayesvol.inference._problem import (
    Problem,
    bucket_length,
    constrain_flat,
    free_shapes,
    labels,
    loglik_total,
    objective_value,
    objective_value_and_grad,
    options_key,
    pad_to_length,
    split,
    unconstrain_flat,
)
from bayesvol.inference.batch import fit_batch
from bayesvol.inference.results import MLEResult
from bayesvol.models import _base

__all__ = ["MLEResult", "fit", "log_likelihood"]

# Importable from here as well, as before it moved beside its differentiable form.
log_likelihood = likelihood.log_likelihood


# Smallest eigenvalue kept when inverting the outer product of scores, relative to the largest.
_OPG_EIGENVALUE_FLOOR = 1e-8


# Optimiser rounds of the OPG-started BFGS at most; a round ends at the gradient tolerance and another one
# follows while the predicted gain in the total log-likelihood exceeds _PREDICTED_GAIN_TOL.
_MAX_ROUNDS = 6


_PREDICTED_GAIN_TOL = 1e-6


@partial(jax.jit, static_argnums=0)
def _opg_inverse(problem: Problem, u_flat, y, num_steps):
    """Inverse mean outer product of the per-observation scores in the unconstrained coordinates.

    By the information equality an approximation of the Hessian of the mean negative log-likelihood,
    positive semi-definite by construction (small eigenvalues are floored); a first inverse Hessian for BFGS.
    The scores come from forward mode over the pointwise log-likelihood; the mean is over the ``num_steps``
    steps of the unpadded series (padded steps have zero scores).
    """
    scores = jax.jacfwd(lambda u: problem.pointwise(problem.constrain(u), y))(u_flat)
    outer = scores.T @ scores / num_steps
    eigenvalues, eigenvectors = jnp.linalg.eigh(0.5 * (outer + outer.T))
    floor = jnp.maximum(_OPG_EIGENVALUE_FLOOR * jnp.max(eigenvalues), 1e-12)
    inverse = (eigenvectors / jnp.maximum(eigenvalues, floor)) @ eigenvectors.T
    inverse = 0.5 * (inverse + inverse.T)
    return jnp.where(jnp.all(jnp.isfinite(inverse)), inverse, jnp.eye(u_flat.shape[0]))


def _bfgs_from_opg(scipy_fun, problem: Problem, u0, y, nobs: int, maxiter: int, gtol: float):
    """SciPy BFGS started from the inverse outer product of scores, continued until the predicted gain is small.

    With a good first inverse Hessian BFGS reaches the gradient tolerance in a fraction of the iterations,
    but near a flat edge of the parameter space (an integrated optimum approached through the stick-breaking
    map) the gradient is small long before the log-likelihood stops rising. Each round therefore ends with
    the predicted gain of a quasi-Newton step, ``nobs * g' H g / 2`` in total log-likelihood (``H`` the
    BFGS inverse Hessian of the mean objective); while it exceeds ``_PREDICTED_GAIN_TOL`` another round
    starts from the estimate and ``H`` with a hundredfold smaller gradient tolerance.
    """

    inverse = np.asarray(_opg_inverse(problem, jnp.asarray(u0), y, float(nobs)), dtype=np.float64)
    x, tol, iterations, evaluations = u0, gtol, 0, 0
    for _ in range(_MAX_ROUNDS):
        res = _optimiser.bfgs(scipy_fun, x, maxiter=maxiter - iterations, gtol=tol, hess_inv0=inverse)
        iterations, evaluations = iterations + res.nit, evaluations + res.nfev
        gain = 0.5 * nobs * float(res.jac @ res.hess_inv @ res.jac)
        if not (res.success and np.isfinite(gain)) or gain < _PREDICTED_GAIN_TOL or iterations >= maxiter:
            break
        x, inverse, tol = res.x, 0.5 * (res.hess_inv + res.hess_inv.T), 0.01 * float(np.max(np.abs(res.jac)))
    res.nit, res.nfev = iterations, evaluations
    return res


def fit(model, y, method: str = "exact", *, start=None, num_starts: int | None = None, maxiter: int = 2000,
        gtol: float = 1e-5, warn: bool = True, rescale: bool = True, stationary: bool = True,
        length_buckets: bool = True, **options) -> MLEResult:
    r"""Maximum-likelihood estimation.

    The parameters are optimised in an unconstrained space given by the support of each prior
    (``numpyro.distributions.biject_to``), so Bayesian and frequentist estimation share one parameter
    space; the gradient comes from JAX and the optimiser is SciPy's BFGS. Several start values are tried
    (the model's own ``start_values(y)``, or ``start``) and the best optimum is kept; a model with
    ``mle_screen_starts = True`` is optimised from the start value with the highest log-likelihood only,
    and one with ``mle_opg_start = True`` starts BFGS from the inverse outer product of the scores and
    restarts it while the predicted gain in log-likelihood exceeds 1e-6. Standard errors
    come from the exact Hessian of the log-likelihood at the optimum (inverse observed information) and,
    robust to misspecification, from the sandwich with the outer product of per-observation scores.
    Compiled functions are cached per model, method and options, so repeated fits skip compilation.

    *Units.* With ``rescale=True`` (default) the data are divided by a reference scale $s$ (their
    standard deviation rounded to a power of two; per column for a panel, or one for all columns for
    families whose parameters mix the columns' units), the model is fitted there, and the results are mapped
    back with the model's ``rescale_params``: the estimates by that map, their covariances by the delta method
    ($J C J'$ with its Jacobian $J$), and the log-likelihood by the change of variables
    $y = s\,y_{ref}$,

    $$
    \log L(\hat\theta; y) = \log L(\hat\theta_{ref}; y_{ref}) - \sum_{\text{observed } y_{ti}} \log s_i,
    $$

    i.e. $-T\log s$ for one series, so ``loglik``, AIC and BIC are those of the data as given. The
    optimiser, its tolerance and the boundary flags then see the same problem whatever the units: estimates,
    standard errors, ``converged`` and ``at_boundary`` are equivariant to multiplying ``y`` by a constant.
    Families without an exact map for their configuration (a numeric ``variance_start``, IG-GARCH with
    ``r != 0``, priors bounded in the data's units) are fitted in the user's units; ``result.data_scale`` is
    then ``None``. A quasi-likelihood of ``log y^2`` (SV ``"qml"``) does not shift.

    *Length buckets.* With ``length_buckets=True`` (default), a model that supports missing values
    (``supports_missing``) fitted by a likelihood that is a causal filter (the GARCH family's ``"exact"``) sees
    its data padded at the end with missing values (NaN) up to a length bucket, $2^k \times$ 1, 1.25,
    1.5 or 1.75 (e.g. 5000 -> 5120): a missing step adds zero to the log-likelihood, so the objective,
    estimates, log-likelihood, standard errors and ``nobs`` are those of the unpadded fit (up to the order of
    floating-point summation), and every series length in a bucket reuses one compiled program instead of
    compiling a new one. ``length_buckets=False`` fits the series at its own length.

    *Stationarity.* With ``stationary=True`` (default) the estimate is restricted to the model's
    covariance-stationary region (GARCH: persistence below one, through a stick-breaking map of the
    persistence shares). ``stationary=False`` lifts that restriction for families that have a variant without
    it (GARCH, GJR: each of ``alpha``, ``beta`` on its prior's support and ``alpha + gamma >= 0``), so that
    estimates can match those of ``arch``, which bounds ``alpha + gamma/2 + beta`` only; other families raise
    ``ValueError``.

    Parameters
    ----------
    model : bayesvol model
    y : array_like or pandas object
        One series. A 2-D array or DataFrame (time x series) of a model that supports batch estimation
        fits every column at once (see `bayesvol.inference.batch.fit_batch`).
    method : str
        Likelihood method (see [`log_likelihood`][bayesvol.log_likelihood]).
    start : dict or list of dict, optional
        Start values; by default the model's ``start_values(y)``.
    num_starts : int, optional
        Use at most this many of the start values.
    maxiter : int
        Optimiser limit: most iterations.
    gtol : float
        Optimiser limit: tolerance on the gradient norm.
    warn : bool
        Warn ([`ConvergenceWarning`][bayesvol.ConvergenceWarning]) when the optimiser fails.
    rescale : bool
        Fit in standardised units and map the results back (see *Units*); ``False`` fits in the user's units.
    stationary : bool
        Restrict the estimate to the covariance-stationary region (see *Stationarity*).
    length_buckets : bool
        Pad the data to a length bucket where that leaves the results unchanged (see *Length buckets*).
    **options
        Passed to the likelihood method (e.g. ``num_particles``, ``seed``).

    Returns
    -------
    MLEResult
        Or, for a batch, a `BatchMLEResult`.
    """
    maxiter = _validation.as_count(maxiter, "maxiter")
    if num_starts is not None:
        num_starts = _validation.as_count(num_starts, "num_starts")
    if isinstance(gtol, bool) or not (isinstance(gtol, numbers.Real) and 0.0 < gtol < np.inf):
        raise ValueError(f"gtol must be a positive number, got {gtol!r}")
    for name, flag in (("rescale", rescale), ("stationary", stationary), ("length_buckets", length_buckets)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    if not stationary:
        model = _nonstationary(model)
    if _is_panel(y) and model.supports_batch_fit:
        return fit_batch(model, y, method, start=start, num_starts=num_starts, maxiter=maxiter, gtol=gtol,
                         warn=warn, rescale=rescale, stationary=stationary, **options)
    row = registry.lookup(model, method)
    if row.fitter is not None and not options.pop("direct", False):
        return row.fitter(model, y, fit=fit, start=start, num_starts=num_starts, maxiter=maxiter, gtol=gtol,
                          warn=warn, rescale=rescale, **options)
    differentiable, by_differences = row.differentiable, row.hessian == "differences"
    se_name, se_row, se_options = _standard_error_source(model, method, row, options.pop("se_method", None),
                                                         options.pop("se_options", None))
    se_differences = options.pop("se_differences", None)
    if se_differences is not None and (se_differences not in ("central", "forward") or not (
            se_row.differentiable and se_row.hessian == "differences")):
        raise ValueError(f"se_differences must be 'central' or 'forward', for methods whose Hessian comes from "
                         f"differences of the gradient; got {se_differences!r} for method {se_name!r}")
    model = model.bind_data(y)
    data = model.validate_data(y)
    starts = _start_params(model, data.values, start, num_starts)
    scaling = _scaling.reference_scaling(model, data.values, starts[0], row.density_of_data) if rescale else None
    starts = _scaling.scaled_starts(model, starts, scaling)
    y_values = jnp.asarray(_scaling.divide(data.values, scaling))
    nobs = int(y_values.shape[0])
    # The optimiser and the derivatives see the data padded to its length bucket where that changes nothing
    # but the compiled program's shape (see *Length buckets*); the padded steps are NaN in any units.
    y_fit = y_values
    if length_buckets and row.length_buckets and model.supports_missing:
        y_fit = jnp.asarray(pad_to_length(y_values, bucket_length(nobs)))
    names = model.param_names
    shapes = tuple(tuple(jnp.shape(getattr(starts[0], n))) for n in names)
    problem = Problem(model=model, method=method, loglik=row.loglik, free_shapes=free_shapes(model, shapes),
                      shapes=shapes, options=options_key(options), stationary=bool(stationary))
    res, converged = _optimise(problem, differentiable, starts, y_fit, nobs, maxiter, gtol)
    u_hat = jnp.asarray(res.x)
    flat_theta = constrain_flat(problem, u_hat)
    if se_name == method:
        loglik, cov, robust_cov, fixed, scores, information = _information(
            problem, differentiable, by_differences, u_hat, flat_theta, y_fit, nobs, se_differences)
    else:
        # Curvature and scores of the smooth likelihood at this method's estimate; the log-likelihood stays
        # this method's (the optimiser's compiled objective gives it without a further compilation).
        se_problem = Problem(model=model, method=se_name, loglik=se_row.loglik, free_shapes=problem.free_shapes,
                             shapes=shapes, options=options_key(se_options), stationary=bool(stationary))
        _, cov, robust_cov, fixed, scores, information = _information(
            se_problem, se_row.differentiable, se_row.hessian == "differences", u_hat, flat_theta, y_fit, nobs,
            se_differences)
        loglik = -nobs * float(objective_value(problem, u_hat, y_fit, float(nobs)))
    params_ref = model.params_type(**problem.unravel(flat_theta))
    flat_user = np.asarray(flat_theta)
    if scaling is not None:
        # Back to the user's units: the estimates by the model's map, covariances by the delta method.
        flat_user = np.asarray(_scaling.to_user_flat(problem, flat_theta, scaling.scale))
        jac = _scaling.user_jacobian(problem, flat_theta, scaling.scale)
        cov, robust_cov = jac @ cov @ jac.T, jac @ robust_cov @ jac.T
        loglik = loglik + scaling.loglik_shift
    se_flat = np.where(fixed, 0.0, se_.standard_errors(cov))
    robust_flat = np.where(fixed, 0.0, se_.standard_errors(robust_cov))
    params_out = se_.inside_supports(model, split(flat_user, names, problem.shapes))
    message = str(res.message)
    diagnostics = dict(row.diagnostics(model, params_ref, y_values, **options)) if row.diagnostics else {}
    if not converged and warn:
        warnings.warn(f"maximum likelihood for {model!r} ({method}) did not converge: {message}",
                      ConvergenceWarning, stacklevel=2)
    boundary = se_.at_boundary(problem, np.asarray(u_hat), scores)
    # The self-check runs on the problem as optimised (standardised units): a zero variance or a singular
    # information there does not depend on the units of the data.
    structured = information.shape[0] != flat_theta.size
    reliability = se_.reliability_warnings(
        labels(model, problem.shapes), se_flat, fixed, boundary, flat_user, loglik, information,
        _free_labels(problem) if structured else None)
    if se_row.rough_surface:
        smooth = sorted(_smooth_methods(model), key=lambda name: name != row.se_method)  # the row's choice first
        reliability.append(se_.rough_surface_warning(se_name, smooth))
    if reliability and warn:
        warnings.warn(f"maximum likelihood for {model!r} ({method}): estimates not reliable: "
                      + "; ".join(reliability), ConvergenceWarning, stacklevel=2)
    return MLEResult(model=model, method=method, params=params_out, se=split(se_flat, names, problem.shapes),
                     robust_se=split(robust_flat, names, problem.shapes), cov=cov, robust_cov=robust_cov,
                     loglik=loglik, nobs=nobs, converged=converged, message=message,
                     at_boundary=boundary, warnings=reliability, se_method=se_name, se_options=dict(se_options),
                     labels=labels(model, problem.shapes), num_starts=len(starts), options=dict(options),
                     num_free_params=int(np.size(res.x)), diagnostics=diagnostics, data_index=data.index,
                     data_shape=tuple(np.shape(data.values)), data=np.asarray(data.values, dtype=np.float64),
                     data_scale=None if scaling is None else _scaling_value(scaling.scale))


def _standard_error_source(model, method: str, row, se_method, se_options):
    """``(name, registry row, options)`` of the likelihood whose Hessian and scores at the estimate give the
    standard errors: ``se_method`` if given, else the row's ``se_method``, else ``method`` itself."""
    if se_options is not None and not isinstance(se_options, dict):
        raise ValueError(f"se_options must be a dict of options of the se_method likelihood, got {se_options!r}")
    name = row.se_method if se_method is None else se_method
    if name is None or name == method:
        if se_options:
            raise ValueError(f"se_options apply to a se_method other than the fitted method {method!r}; "
                             f"got se_options={se_options!r} with se_method={se_method!r}")
        return method, row, {}
    smooth = _smooth_methods(model) if row.density_of_data else []
    if not isinstance(name, str) or name not in smooth + [method]:
        raise ValueError(f"se_method must name a likelihood of {model!r} whose Hessian gives the standard errors: "
                         f"{', '.join(repr(m) for m in [method] + smooth)}; got {se_method!r}")
    return name, registry.lookup(model, name), dict(se_options or {})


def _smooth_methods(model) -> list[str]:
    """The family's likelihoods that are densities of the data with a smooth surface: candidates for
    ``se_method`` (a quasi-likelihood of a transform of the data has another curvature)."""
    rows = ((name, registry.lookup(model, name)) for name in registry.available(model))
    return [name for name, row in rows if row.loglik is not None and row.density_of_data and not row.rough_surface]


def _scaling_value(scale):
    return float(scale) if np.ndim(scale) == 0 else np.asarray(scale, dtype=np.float64)


def _nonstationary(model):
    """The model's variant whose maximum-likelihood coordinates leave the persistence free."""
    variant = model.nonstationary_variant()
    if variant is None:
        raise ValueError(f"stationary=False is not available for {model!r}: its parameter space has no variant "
                         "without the stationarity restriction; fit it with stationary=True")
    return variant


def _start_params(model, values, start, num_starts) -> list:
    """The start values to try: the model's own ``start_values`` or the user's, checked against the supports."""
    if start is None:
        starts = list(model.start_values(values))
    else:
        starts = [start] if isinstance(start, dict) else list(start)
    starts = starts[: num_starts or len(starts)]
    if not starts:
        raise ValueError("no start values")
    return [_base.as_params(model, s) for s in starts]


def _optimise(problem: Problem, differentiable: bool, starts, y_values, nobs: int, maxiter: int, gtol: float):
    """The best optimum over the start values: ``(scipy result, converged)``.

    ``y_values`` may be padded with missing steps beyond the ``nobs`` of the series (see [`fit`][bayesvol.fit]); the
    objective is the mean over ``nobs`` steps either way.

    BFGS on the JAX gradient (from the inverse outer product of scores for models with ``mle_opg_start``), or
    Nelder-Mead for a likelihood without derivatives. Start values with a non-finite likelihood are skipped;
    with ``mle_screen_starts`` only the start of highest likelihood is optimised (as arch does).
    """
    import scipy.optimize  # here: it takes a second to import and only fitting needs it

    model, num_steps = problem.model, float(nobs)
    scipy_fun = _optimiser.scipy_objective(lambda u: objective_value_and_grad(problem, u, y_values, num_steps))

    candidates = []
    for params0 in starts:
        u0 = np.asarray(unconstrain_flat(problem, params0), dtype=np.float64)
        value0 = float(objective_value(problem, jnp.asarray(u0), y_values, num_steps))
        if np.isfinite(value0):
            candidates.append((value0, u0))
    if model.mle_screen_starts and candidates:
        candidates = [min(candidates, key=lambda c: c[0])]
    best = None
    for _, u0 in candidates:
        if differentiable:
            if model.mle_opg_start:
                res = _bfgs_from_opg(scipy_fun, problem, u0, y_values, nobs, maxiter, gtol)
            else:
                res = _optimiser.bfgs(scipy_fun, u0, maxiter=maxiter, gtol=gtol)
            grad_norm = float(np.max(np.abs(res.jac)))
            ok = bool(res.success) or (grad_norm < 10 * gtol and np.isfinite(res.fun))
        else:
            res = scipy.optimize.minimize(
                lambda u: float(objective_value(problem, jnp.asarray(u), y_values, num_steps)), u0,
                method="Nelder-Mead",
                options={"maxiter": maxiter * 5, "xatol": 1e-5, "fatol": 1e-7, "adaptive": True})
            ok = bool(res.success)
        if best is None or res.fun < best[0].fun:
            best = (res, ok)
    if best is None:
        raise ValueError("the log-likelihood is not finite at any start value; give start values inside the "
                         "support of the data (see the model's documentation)")
    return best


def _information(problem: Problem, differentiable: bool, by_differences: bool, u_hat, flat_theta, y_values,
                 nobs: int, se_differences):
    """Log-likelihood, covariances (inverse information, sandwich), fixed entries and scores at the estimate.

    ``y_values`` may be padded with missing steps beyond the ``nobs`` of the series; their scores are zero and
    are dropped, so the sandwich and the boundary check see the ``nobs`` rows of the series.

    Structured parameters (entries fixed for identification, symmetric matrices) have fewer free coordinates
    than entries: derivatives are then taken in the unconstrained coordinates and mapped back by the delta
    method, so that fixed entries do not enter the information matrix as if they were free.
    """
    structured = u_hat.size != flat_theta.size
    if structured:
        def coords_pointwise(u):
            return problem.pointwise_flat(constrain_flat(problem, u), y_values)
        coords = u_hat
    else:
        def coords_pointwise(t):
            return problem.pointwise_flat(t, y_values)
        coords = flat_theta

    if differentiable and not structured and not by_differences:
        loglik, hessian, scores = (np.asarray(v) for v in se_.loglik_derivatives(problem, flat_theta, y_values))
        loglik = float(loglik)
    else:
        total = float(objective_value(problem, u_hat, y_values, float(nobs))) if by_differences else np.inf
        # The optimiser's compiled objective gives the total log-likelihood without a further compilation.
        loglik = -total * nobs if np.isfinite(total) else float(loglik_total(problem, flat_theta, y_values))
        if differentiable and by_differences:
            hessian, scores = se_.gradient_differences(coords_pointwise, np.asarray(coords),
                                                       se_.compiled_gradient(problem, y_values, nobs, structured),
                                                       scheme=se_differences or "central")
        elif differentiable:
            hessian = np.asarray(jax.jit(jax.hessian(lambda u: jnp.sum(coords_pointwise(u))))(coords))
            scores = np.asarray(jax.jit(jax.jacfwd(coords_pointwise))(coords))
        else:
            hessian, scores = se_.finite_difference_derivatives(coords_pointwise, np.asarray(coords))
    scores = scores[:nobs]
    cov, robust_cov = se_.covariances(hessian, scores)
    fixed = np.zeros(flat_theta.size, dtype=bool)
    if structured:
        jac = np.asarray(jax.jacfwd(lambda u: constrain_flat(problem, u))(u_hat))
        cov, robust_cov = jac @ cov @ jac.T, jac @ robust_cov @ jac.T
        fixed = np.all(jac == 0.0, axis=1)
        # Natural-coordinate scores are not defined here; the boundary check then relies on |u| alone.
        scores = np.zeros((nobs, flat_theta.size))
    return loglik, cov, robust_cov, fixed, scores, -0.5 * (hessian + hessian.T)


def _free_labels(problem: Problem) -> list[str]:
    """Labels of the unconstrained coordinates (structured parameters: fewer coordinates than entries)."""
    return [f"{name}[u{i}]" if shape else name for name, shape in zip(problem.names, problem.free_shapes, strict=True)
            for i in range(int(np.prod(shape, dtype=int)) if shape else 1)]


def _is_panel(y) -> bool:
    """True for a 2-D array or a DataFrame with several columns (one series per column)."""
    if isinstance(y, pd.DataFrame):
        return y.shape[1] > 1
    return not isinstance(y, pd.Series) and np.ndim(y) == 2 and min(np.shape(y)) > 1
