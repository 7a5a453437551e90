"""Maximum likelihood: one optimiser and one result type for every model and likelihood method.

A likelihood method is registered per model class with :func:`register_loglik`; it maps
``(model, params, y, **options)`` to the pointwise log-likelihood (a JAX array, one value per time step)
and must be a pure JAX function of ``params`` so that gradients and Hessians come from autodiff.
Simulated likelihoods (particle filter, EIS) keep their random numbers fixed through ``seed``
(common random numbers), so the optimiser sees one deterministic surface.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.stats
from jax.flatten_util import ravel_pytree
from numpyro.distributions import biject_to
from numpyro.distributions.transforms import IdentityTransform

from bayesvol.inference.diagnostics import ConvergenceWarning

__all__ = ["MLEResult", "fit", "log_likelihood", "register_loglik"]

_REGISTRY: dict[tuple[type, str], tuple[Callable, bool]] = {}
_DIAGNOSTICS: dict[tuple[type, str], Callable] = {}
# Methods whose Hessian and scores come from central differences of the compiled gradient and pointwise
# log-likelihood rather than nested autodiff (for deep simulated likelihoods, whose second-order programs
# are slow to compile).
_GRADIENT_DIFFERENCES: set[tuple[type, str]] = set()
# Model-specific estimation drivers that replace fit()'s single optimisation for one method (e.g. rounds of
# optimisation with an importance sampler held fixed within each round).
_FITTERS: dict[tuple[type, str], Callable] = {}


def register_fitter(model_type: type, method: str):
    """Register ``fitter(model, y, **fit_arguments) -> MLEResult`` to run ``fit(model, y, method)``.

    The fitter may call :func:`fit` with ``direct=True`` to run the ordinary optimisation (e.g. once per
    round with some options changed).
    """

    def decorator(fn):
        _FITTERS[(model_type, method)] = fn
        return fn

    return decorator


def register_loglik(model_type: type, method: str, *, differentiable: bool = True,
                    diagnostics: Callable | None = None, hessian: str = "autodiff"):
    """Register ``fn(model, params, y, **options) -> pointwise log-likelihood`` for ``model_type``.

    ``differentiable=False`` makes :func:`fit` use a derivative-free optimiser (Nelder–Mead) and a
    finite-difference Hessian for that method. ``diagnostics(model, params, y, **options) -> dict``, if
    given, is called by :func:`fit` at the estimate (e.g. the Monte Carlo error of a simulated
    likelihood); its entries go to :attr:`MLEResult.diagnostics` and the summary. ``hessian="differences"``
    takes the Hessian and the per-observation scores from central differences of the (compiled) gradient
    and pointwise log-likelihood instead of nested autodiff.
    """
    if hessian == "gradient_differences":
        hessian = "differences"
    if hessian not in ("autodiff", "differences"):
        raise ValueError(f"hessian must be 'autodiff' or 'differences', got {hessian!r}")

    def decorator(fn):
        _REGISTRY[(model_type, method)] = (fn, differentiable)
        if hessian == "differences":
            _GRADIENT_DIFFERENCES.add((model_type, method))
        if diagnostics is not None:
            _DIAGNOSTICS[(model_type, method)] = diagnostics
        return fn

    return decorator


def _lookup(model, method: str):
    for cls in type(model).__mro__:
        if (cls, method) in _REGISTRY:
            return _REGISTRY[(cls, method)]
    known = sorted(m for (cls, m) in _REGISTRY if isinstance(model, cls))
    raise ValueError(
        f"method {method!r} is not available for {model!r}; available: {', '.join(known) or 'none'}"
    )


def _bind(model, y):
    """A model may fix static configuration from the data (e.g. the number of series) via ``bind_data(y)``."""
    return model.bind_data(y) if hasattr(model, "bind_data") else model


def _prepare_data(model, y):
    if hasattr(model, "validate_data"):
        return model.validate_data(y)
    from bayesvol._validation import as_returns

    return as_returns(y)


def log_likelihood(model, params, y, method: str = "exact", *, pointwise: bool = False, **options):
    """Log-likelihood of ``y`` under ``model`` at ``params``, all constants included.

    Parameters
    ----------
    model : bayesvol model
    params : <Model>Params or dict
        Parameter values by name.
    y : array_like or pandas object
        Data.
    method : str
        ``"exact"`` for observation-driven models (GARCH family); for latent-state models a simulated or
        approximate method such as ``"pf"``, ``"eis"``, ``"bellman"``, ``"qml"`` where registered.
    pointwise : bool
        Return the per-observation terms ``log p(y_t | y_{1:t-1})`` instead of their sum.
    **options
        Passed to the method (e.g. ``num_particles``, ``seed``).

    Returns
    -------
    float or numpy.ndarray
    """
    fn, _ = _lookup(model, method)
    model = _bind(model, y)
    data = _prepare_data(model, y)
    from bayesvol.models import _base  # deferred: model modules import this one to register likelihoods

    params = _base.as_params(model, params)
    values = np.asarray(fn(model, params, jnp.asarray(data.values), **options))
    return values if pointwise else float(values.sum())


@dataclass
class MLEResult:
    """Maximum-likelihood estimates with standard errors.

    Attributes
    ----------
    params : dict
        Estimates by parameter name (floats, or arrays for matrix parameters).
    se, robust_se : dict
        Standard errors from the inverse observed information, and sandwich (QML-robust) ones.
    cov : numpy.ndarray
        Covariance matrix of the flattened estimates, in the order of ``param_names`` (flattened).
    loglik, aic, bic : float
    nobs : int
    converged : bool
        The optimiser's success flag and a small gradient; ``False`` is also warned about.
    at_boundary : list of str
        Parameters whose estimate lies (numerically) on the edge of their support; their standard errors
        are not reliable.
    num_free_params : int or None
        Number of free coordinates (the unconstrained dimension), fewer than the entries for structured
        matrices such as identified loadings or covariance matrices; fixed entries get standard error zero.
    diagnostics : dict
        Method-specific checks at the estimate, e.g. ``loglik_mc_sd``, the Monte Carlo standard deviation of
        a simulated log-likelihood.
    """

    model: object
    method: str
    params: dict
    se: dict
    robust_se: dict
    cov: np.ndarray
    robust_cov: np.ndarray
    loglik: float
    nobs: int
    converged: bool
    message: str
    at_boundary: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    num_starts: int = 1
    num_free_params: int | None = None
    options: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)

    @property
    def num_params(self) -> int:
        """Free parameters (the unconstrained dimension: a symmetric k x k matrix counts k(k+1)/2)."""
        return self.num_free_params if self.num_free_params is not None else len(self.labels)

    @property
    def aic(self) -> float:
        return 2.0 * self.num_params - 2.0 * self.loglik

    @property
    def bic(self) -> float:
        return self.num_params * math.log(self.nobs) - 2.0 * self.loglik

    def flat(self, values: dict) -> np.ndarray:
        return np.concatenate([np.ravel(values[name]) for name in self.model.param_names])

    def to_frame(self, robust: bool = False):
        """Table of estimates, standard errors, t statistics, p-values and 95% intervals (pandas)."""
        import pandas as pd

        est = self.flat(self.params)
        se = self.flat(self.robust_se if robust else self.se)
        with np.errstate(divide="ignore", invalid="ignore"):
            tstat = np.where(se > 0, est / se, np.nan)   # entries fixed by identification have se 0
        pvalue = 2.0 * scipy.stats.norm.sf(np.abs(tstat))
        return pd.DataFrame(
            {"coef": est, "std err": se, "t": tstat, "P>|t|": pvalue,
             "2.5%": est - 1.959964 * se, "97.5%": est + 1.959964 * se},
            index=self.labels,
        )

    def summary(self, robust: bool = False) -> str:
        """A readable table in the manner of arch's ``summary()``."""
        describe = getattr(self.model, "describe", lambda: repr(self.model))()
        lines = [
            f"{describe} — maximum likelihood ({self.method})",
            "=" * 78,
            f"Log-likelihood: {self.loglik:14.4f}    AIC: {self.aic:12.4f}    BIC: {self.bic:12.4f}",
            f"Observations:   {self.nobs:14d}    Converged: {self.converged!s:>6}    Starts: {self.num_starts}",
            f"Covariance: {'robust (sandwich)' if robust else 'inverse observed information'}",
            "-" * 78,
            self.to_frame(robust).to_string(float_format=lambda v: f"{v: .4f}"),
            "=" * 78,
        ]
        lines.extend(f"{name}: {value}" for name, value in self.diagnostics.items())
        if self.at_boundary:
            lines.append(f"At the boundary of the support (standard errors unreliable): {', '.join(self.at_boundary)}")
        if not self.converged:
            lines.append(f"WARNING: the optimiser did not converge: {self.message}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _labels(model, shapes) -> list[str]:
    """Labels of the flattened parameters; ``shapes`` holds each parameter's shape in ``param_names`` order."""
    labels = []
    for name, shape in zip(model.param_names, shapes, strict=True):
        if len(shape) == 0:
            labels.append(name)
        else:
            labels.extend(f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(shape))
    return labels


def _split(flat: np.ndarray, names, shapes) -> dict:
    """Name -> value (float, or array for matrix parameters) from a flat vector in ``names`` order."""
    out, position = {}, 0
    for name, shape in zip(names, shapes, strict=True):
        size = int(np.prod(shape, dtype=int))
        out[name] = _to_python(np.asarray(flat[position:position + size]).reshape(shape))
        position += size
    return out


def _transforms(model) -> dict:
    if hasattr(model, "param_transforms"):
        return model.param_transforms()
    priors = model.prior_distributions()
    return {name: biject_to(getattr(priors, name).support) for name in model.param_names}


class _ById:
    """Hashes and compares by identity: a static jit argument for options that are not hashable."""

    def __init__(self, value):
        self.value = value


def _options_key(options: dict):
    items = tuple(sorted(options.items()))
    try:
        hash(items)
    except TypeError:
        return _ById(items)
    return items


@dataclass(frozen=True)
class _Problem:
    """Everything static about one estimation problem, so compiled functions are reused across fits.

    ``free_shapes`` and ``shapes`` are the shapes of the unconstrained and the natural parameters.
    """

    model: object
    method: str
    free_shapes: tuple
    shapes: tuple
    options: object

    @property
    def names(self):
        return self.model.param_names

    def option_dict(self) -> dict:
        items = self.options.value if isinstance(self.options, _ById) else self.options
        return dict(items)

    def unravel_free(self, u_flat) -> dict:
        template = tuple(jnp.zeros(shape) for shape in self.free_shapes)
        return dict(zip(self.names, ravel_pytree(template)[1](u_flat), strict=True))

    def unravel(self, theta_flat) -> dict:
        template = tuple(jnp.zeros(shape) for shape in self.shapes)
        return dict(zip(self.names, ravel_pytree(template)[1](theta_flat), strict=True))

    def ravel(self, values: dict):
        """Flatten name -> value in the order of ``param_names`` (a dict would be flattened by sorted key)."""
        return ravel_pytree(tuple(jnp.asarray(values[n]) for n in self.names))[0]

    def constrain(self, u_flat):
        u = self.unravel_free(u_flat)
        if hasattr(self.model, "from_unconstrained"):  # a model-owned joint transform (e.g. stationarity)
            return self.model.from_unconstrained(u)
        transforms = _transforms(self.model)
        return self.model.params_type(**{n: transforms[n](u[n]) for n in self.names})

    def pointwise(self, params, y):
        fn, _ = _lookup(self.model, self.method)
        return fn(self.model, params, y, **self.option_dict())

    def pointwise_flat(self, theta_flat, y):
        return self.pointwise(self.model.params_type(**self.unravel(theta_flat)), y)


def _objective(problem: _Problem, u_flat, y):
    value = -jnp.sum(problem.pointwise(problem.constrain(u_flat), y)) / y.shape[0]
    return jnp.where(jnp.isfinite(value), value, jnp.inf)


_objective_value = jax.jit(_objective, static_argnums=0)
_objective_value_and_grad = jax.jit(jax.value_and_grad(_objective, argnums=1), static_argnums=0)
# Smallest eigenvalue kept when inverting the outer product of scores, relative to the largest.
_OPG_EIGENVALUE_FLOOR = 1e-8
# Optimiser rounds of the OPG-started BFGS at most; a round ends at the gradient tolerance and another one
# follows while the predicted gain in the total log-likelihood exceeds _PREDICTED_GAIN_TOL.
_MAX_ROUNDS = 6
_PREDICTED_GAIN_TOL = 1e-6


@partial(jax.jit, static_argnums=0)
def _opg_inverse(problem: _Problem, u_flat, y):
    """Inverse mean outer product of the per-observation scores in the unconstrained coordinates.

    By the information equality an approximation of the Hessian of the mean negative log-likelihood,
    positive semi-definite by construction (small eigenvalues are floored); a first inverse Hessian for BFGS.
    The scores come from forward mode over the pointwise log-likelihood.
    """
    scores = jax.jacfwd(lambda u: problem.pointwise(problem.constrain(u), y))(u_flat)
    outer = scores.T @ scores / y.shape[0]
    eigenvalues, eigenvectors = jnp.linalg.eigh(0.5 * (outer + outer.T))
    floor = jnp.maximum(_OPG_EIGENVALUE_FLOOR * jnp.max(eigenvalues), 1e-12)
    inverse = (eigenvectors / jnp.maximum(eigenvalues, floor)) @ eigenvectors.T
    inverse = 0.5 * (inverse + inverse.T)
    return jnp.where(jnp.all(jnp.isfinite(inverse)), inverse, jnp.eye(u_flat.shape[0]))


def _bfgs_from_opg(scipy_fun, problem: _Problem, u0, y, nobs: int, maxiter: int, gtol: float):
    """SciPy BFGS started from the inverse outer product of scores, continued until the predicted gain is small.

    With a good first inverse Hessian BFGS reaches the gradient tolerance in a fraction of the iterations,
    but near a flat edge of the parameter space (an integrated optimum approached through the stick-breaking
    map) the gradient is small long before the log-likelihood stops rising. Each round therefore ends with
    the predicted gain of a quasi-Newton step, ``nobs * g' H g / 2`` in total log-likelihood (``H`` the
    BFGS inverse Hessian of the mean objective); while it exceeds ``_PREDICTED_GAIN_TOL`` another round
    starts from the estimate and ``H`` with a hundredfold smaller gradient tolerance.
    """
    inverse = np.asarray(_opg_inverse(problem, jnp.asarray(u0), y), dtype=np.float64)
    x, tol, iterations, evaluations = u0, gtol, 0, 0
    for _ in range(_MAX_ROUNDS):
        res = scipy.optimize.minimize(scipy_fun, x, jac=True, method="BFGS",
                                      options={"maxiter": maxiter - iterations, "gtol": tol, "hess_inv0": inverse})
        iterations, evaluations = iterations + res.nit, evaluations + res.nfev
        gain = 0.5 * nobs * float(res.jac @ res.hess_inv @ res.jac)
        if not (res.success and np.isfinite(gain)) or gain < _PREDICTED_GAIN_TOL or iterations >= maxiter:
            break
        x, inverse, tol = res.x, 0.5 * (res.hess_inv + res.hess_inv.T), 0.01 * float(np.max(np.abs(res.jac)))
    res.nit, res.nfev = iterations, evaluations
    return res


@partial(jax.jit, static_argnums=0)
def _unconstrain_flat(problem: _Problem, params):
    if hasattr(problem.model, "to_unconstrained"):
        return problem.ravel(problem.model.to_unconstrained(params))
    transforms = _transforms(problem.model)
    return problem.ravel({n: transforms[n].inv(jnp.asarray(getattr(params, n))) for n in problem.names})


@partial(jax.jit, static_argnums=0)
def _constrain_flat(problem: _Problem, u_flat):
    params = problem.constrain(u_flat)
    return problem.ravel(params._asdict())


def _loglik_derivatives_one(problem: _Problem, theta_flat, y):
    """Total log-likelihood, its Hessian and the per-observation scores at the natural parameters.

    The scores come from forward mode over the pointwise log-likelihood (the parameter tangents carried
    through the recursion alongside the values), the Hessian from forward mode over the reverse-mode
    gradient of the total. Two separate passes are cheaper than one forward pass over (pointwise terms,
    gradient), whose tangents would run through both programs at once.
    """

    def terms_twice(t):
        terms = problem.pointwise_flat(t, y)
        return terms, terms

    scores, terms = jax.jacfwd(terms_twice, has_aux=True)(theta_flat)
    hessian = jax.hessian(lambda t: jnp.sum(problem.pointwise_flat(t, y)))(theta_flat)
    return jnp.sum(terms), hessian, scores


_loglik_derivatives = jax.jit(_loglik_derivatives_one, static_argnums=0)


@partial(jax.jit, static_argnums=0)
def _loglik_total(problem: _Problem, theta_flat, y):
    return jnp.sum(problem.pointwise_flat(theta_flat, y))


def _free_shapes_uncached(model, shapes: tuple) -> tuple:
    transforms = _transforms(model)
    names = model.param_names
    structs = {n: jax.ShapeDtypeStruct(shape, jnp.float64) for n, shape in zip(names, shapes, strict=True)}
    free = jax.eval_shape(lambda p: {n: transforms[n].inv(p[n]) for n in names}, structs)
    return tuple(tuple(free[n].shape) for n in names)


_free_shapes_cached = lru_cache(maxsize=64)(_free_shapes_uncached)


def _free_shapes(model, shapes: tuple) -> tuple:
    """Shapes of the unconstrained coordinates of natural parameters of the given shapes.

    Tracing the transforms costs a few milliseconds, a tenth of a warm GARCH fit, so the answer is cached
    per (hashable) model.
    """
    try:
        return _free_shapes_cached(model, shapes)
    except TypeError:  # a model that does not hash
        return _free_shapes_uncached(model, shapes)


def fit(model, y, method: str = "exact", *, start=None, num_starts: int | None = None, maxiter: int = 2000,
        gtol: float = 1e-5, warn: bool = True, **options) -> MLEResult:
    """Maximum-likelihood estimation.

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

    Parameters
    ----------
    model : bayesvol model
    y : array_like or pandas object
        One series. A 2-D array or DataFrame (time x series) of a model that supports batch estimation
        fits every column at once (see :func:`bayesvol.inference.batch.fit_batch`).
    method : str
        Likelihood method (see :func:`log_likelihood`).
    start : dict or list of dict, optional
        Start values; by default the model's ``start_values(y)``.
    num_starts : int, optional
        Use at most this many of the start values.
    maxiter, gtol :
        Optimiser limits.
    warn : bool
        Warn (:class:`~bayesvol.ConvergenceWarning`) when the optimiser fails.
    **options
        Passed to the likelihood method (e.g. ``num_particles``, ``seed``).

    Returns
    -------
    MLEResult
        Or, for a batch, a :class:`~bayesvol.inference.batch.BatchMLEResult`.
    """
    if _is_panel(y) and getattr(model, "supports_batch_fit", False):
        from bayesvol.inference.batch import fit_batch

        return fit_batch(model, y, method, start=start, num_starts=num_starts, maxiter=maxiter, gtol=gtol,
                         warn=warn, **options)
    fitter = None if options.pop("direct", False) else next(
        (_FITTERS[(cls, method)] for cls in type(model).__mro__ if (cls, method) in _FITTERS), None)
    if fitter is not None:
        return fitter(model, y, start=start, num_starts=num_starts, maxiter=maxiter, gtol=gtol, warn=warn, **options)
    _, differentiable = _lookup(model, method)
    se_differences = options.pop("se_differences", None)
    if se_differences is not None and (se_differences not in ("central", "forward") or not (
            differentiable and any((cls, method) in _GRADIENT_DIFFERENCES for cls in type(model).__mro__))):
        raise ValueError(f"se_differences must be 'central' or 'forward', for methods whose Hessian comes from "
                         f"differences of the gradient; got {se_differences!r} for method {method!r}")
    model = _bind(model, y)
    data = _prepare_data(model, y)
    y_values = jnp.asarray(data.values)
    nobs = int(y_values.shape[0])
    transforms = _transforms(model)
    if start is None:
        starts = list(model.start_values(data.values))
    else:
        starts = [start] if isinstance(start, dict) else list(start)
    starts = starts[: num_starts or len(starts)]
    if not starts:
        raise ValueError("no start values")
    from bayesvol.models import _base  # deferred: model modules import this one to register likelihoods

    starts = [_base.as_params(model, s) for s in starts]
    names = model.param_names

    shapes = tuple(tuple(jnp.shape(getattr(starts[0], n))) for n in names)
    problem = _Problem(model=model, method=method, free_shapes=_free_shapes(model, shapes), shapes=shapes,
                       options=_options_key(options))

    def scipy_fun(u):
        v, g = _objective_value_and_grad(problem, jnp.asarray(u), y_values)
        v, g = float(v), np.asarray(g, dtype=np.float64)
        if not np.isfinite(v) or not np.all(np.isfinite(g)):
            return 1e10, np.zeros_like(g)
        return v, g

    candidates = []
    for params0 in starts:
        u0 = np.asarray(_unconstrain_flat(problem, params0), dtype=np.float64)
        value0 = float(_objective_value(problem, jnp.asarray(u0), y_values))
        if np.isfinite(value0):
            candidates.append((value0, u0))
    if getattr(model, "mle_screen_starts", False) and candidates:
        # Screen the start values by their log-likelihood and optimise from the best one only (as arch does).
        candidates = [min(candidates, key=lambda c: c[0])]
    best = None
    for _, u0 in candidates:
        if differentiable and getattr(model, "mle_opg_start", False):
            res = _bfgs_from_opg(scipy_fun, problem, u0, y_values, nobs, maxiter, gtol)
            grad_norm = float(np.max(np.abs(res.jac)))
            ok = bool(res.success) or (grad_norm < 10 * gtol and np.isfinite(res.fun))
        elif differentiable:
            res = scipy.optimize.minimize(scipy_fun, u0, jac=True, method="BFGS",
                                          options={"maxiter": maxiter, "gtol": gtol})
            grad_norm = float(np.max(np.abs(res.jac)))
            ok = bool(res.success) or (grad_norm < 10 * gtol and np.isfinite(res.fun))
        else:
            res = scipy.optimize.minimize(
                lambda u: float(_objective_value(problem, jnp.asarray(u), y_values)), u0, method="Nelder-Mead",
                options={"maxiter": maxiter * 5, "xatol": 1e-5, "fatol": 1e-7, "adaptive": True})
            ok = bool(res.success)
        if best is None or res.fun < best[0].fun:
            best = (res, ok)
    if best is None:
        raise ValueError("the log-likelihood is not finite at any start value; give start values inside the "
                         "support of the data (see the model's documentation)")
    res, converged = best
    u_hat = jnp.asarray(res.x)
    flat_theta = _constrain_flat(problem, u_hat)
    # Structured parameters (entries fixed for identification, symmetric matrices) have fewer free coordinates
    # than entries: derivatives are then taken in the unconstrained coordinates and mapped back by the delta
    # method, so that fixed entries do not enter the information matrix as if they were free.
    structured = u_hat.size != flat_theta.size
    if structured:
        def coords_pointwise(u):
            return problem.pointwise_flat(_constrain_flat(problem, u), y_values)
        coords = u_hat
    else:
        def coords_pointwise(t):
            return problem.pointwise_flat(t, y_values)
        coords = flat_theta

    by_differences = any((cls, method) in _GRADIENT_DIFFERENCES for cls in type(model).__mro__)
    if differentiable and not structured and not by_differences:
        loglik, hessian, scores = (np.asarray(v) for v in _loglik_derivatives(problem, flat_theta, y_values))
        loglik = float(loglik)
    else:
        total = float(_objective_value(problem, u_hat, y_values)) if by_differences else np.inf
        # The optimiser's compiled objective gives the total log-likelihood without a further compilation.
        loglik = -total * nobs if np.isfinite(total) else float(_loglik_total(problem, flat_theta, y_values))
        if differentiable and by_differences:
            hessian, scores = _gradient_differences(coords_pointwise, np.asarray(coords),
                                                    _compiled_gradient(problem, y_values, nobs, structured),
                                                    scheme=se_differences or "central")
        elif differentiable:
            hessian = np.asarray(jax.jit(jax.hessian(lambda u: jnp.sum(coords_pointwise(u))))(coords))
            scores = np.asarray(jax.jit(jax.jacfwd(coords_pointwise))(coords))
        else:
            hessian, scores = _finite_difference_derivatives(coords_pointwise, np.asarray(coords))
    cov, robust_cov = _covariances(hessian, scores)
    fixed = np.zeros(flat_theta.size, dtype=bool)
    if structured:
        jac = np.asarray(jax.jacfwd(lambda u: _constrain_flat(problem, u))(u_hat))
        cov, robust_cov = jac @ cov @ jac.T, jac @ robust_cov @ jac.T
        fixed = np.all(jac == 0.0, axis=1)
        # Natural-coordinate scores are not defined here; the boundary check then relies on |u| alone.
        scores = np.zeros((nobs, flat_theta.size))
    se_flat = np.where(fixed, 0.0, _standard_errors(cov))
    robust_flat = np.where(fixed, 0.0, _standard_errors(robust_cov))
    params_out = _inside_supports(model, _split(np.asarray(flat_theta), names, problem.shapes))
    se = _split(se_flat, names, problem.shapes)
    robust_se = _split(robust_flat, names, problem.shapes)
    at_boundary = _at_boundary(problem, transforms, np.asarray(u_hat), scores)
    message = str(res.message)
    diagnose = next((_DIAGNOSTICS[(cls, method)] for cls in type(model).__mro__ if (cls, method) in _DIAGNOSTICS),
                    None)
    diagnostics = (dict(diagnose(model, model.params_type(**problem.unravel(flat_theta)), y_values, **options))
                   if diagnose else {})
    if not converged and warn:
        warnings.warn(f"maximum likelihood for {model!r} ({method}) did not converge: {message}",
                      ConvergenceWarning, stacklevel=2)
    return MLEResult(model=model, method=method, params=params_out, se=se, robust_se=robust_se, cov=cov,
                     robust_cov=robust_cov, loglik=loglik, nobs=nobs, converged=converged, message=message,
                     at_boundary=at_boundary, labels=_labels(model, problem.shapes), num_starts=len(starts),
                     options=dict(options), num_free_params=int(np.size(res.x)),
                     diagnostics=diagnostics)


def _is_panel(y) -> bool:
    """True for a 2-D array or a DataFrame with several columns (one series per column)."""
    import pandas as pd

    if isinstance(y, pd.DataFrame):
        return y.shape[1] > 1
    return not isinstance(y, pd.Series) and np.ndim(y) == 2 and min(np.shape(y)) > 1


def _to_python(value):
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr


def _inside_supports(model, values: dict) -> dict:
    """Estimates that rounded onto the edge of their support (``exp(u)`` underflowing to 0 for ``u`` far
    out) are moved to the nearest floating-point number inside, so the result can be passed back to
    :func:`log_likelihood`, ``forecast`` and ``simulate``; such parameters are listed in ``at_boundary``."""
    priors = model.prior_distributions() if hasattr(model, "prior_distributions") else None
    if priors is None:
        return values
    out = dict(values)
    for name, value in values.items():
        prior = getattr(priors, name, None)
        if prior is None or np.ndim(value) or bool(prior.support(jnp.asarray(value))):
            continue
        for direction in (1.0, -1.0):
            # A relative step, or the smallest normal number at zero (JAX flushes subnormals to zero).
            nudged = float(value + direction * max(abs(value) * 4 * np.finfo(float).eps, np.finfo(float).tiny))
            if bool(prior.support(jnp.asarray(nudged))):
                out[name] = nudged
                break
    return out


def _standard_errors(cov) -> np.ndarray:
    """Square roots of the variances; NaN where the information matrix gives a non-positive variance."""
    variances = np.diag(cov)
    return np.where(variances > 0, np.sqrt(np.abs(variances)), np.nan)


def _at_boundary(problem: _Problem, transforms: dict, u_flat, scores) -> list[str]:
    """Parameters whose estimate sits on the edge of a bounded support.

    Either the unconstrained value is far out (``|u| > 12``), or it is well out (``|u| > 6``) and the
    optimiser stopped there only because the transform flattens out: the score in the natural parameter,
    ``|sum_t s_t| / sqrt(sum_t s_t^2)``, is not near zero (above 0.05; at an interior optimum reached to the
    gradient tolerance it is of order ``gtol * sqrt(T)`` divided by the transform's slope), so the data push
    the estimate beyond the edge. A parameter with an unbounded support (identity transform) has no edge.
    """
    u_named = _split(u_flat, problem.names, problem.free_shapes)
    gradient = scores.sum(axis=0)
    spread = np.sqrt(np.sum(scores**2, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        pressure = _split(np.abs(gradient) / spread, problem.names, problem.shapes)

    def on_edge(n):
        far_out = np.abs(np.asarray(u_named[n]))
        if far_out.shape != np.shape(pressure[n]):  # e.g. a matrix parameter with a differently shaped transform
            return bool(np.any(far_out > 12.0))
        return bool(np.any((far_out > 12.0) | ((far_out > 6.0) & (np.nan_to_num(pressure[n]) > 0.05))))

    if hasattr(problem.model, "bounded_free_names"):
        bounded = set(problem.model.bounded_free_names())
    else:
        bounded = {n for n in problem.names if not isinstance(transforms[n], IdentityTransform)}
    return [n for n in problem.names if n in bounded and on_edge(n)]


def _covariances(hessian, scores):
    information = -0.5 * (hessian + hessian.T)
    try:
        cov = np.linalg.inv(information)
        # A redundant parametrisation (both triangles of a symmetric matrix) has a singular information.
        if not np.all(np.isfinite(cov)) or not np.allclose(information @ cov, np.eye(len(cov)), atol=1e-6):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(information)
    outer = scores.T @ scores
    return cov, cov @ outer @ cov


def _constrain_jacobian_one(problem: _Problem, u_flat):
    return jax.jacfwd(lambda u: problem.ravel(problem.constrain(u)._asdict()))(u_flat)


_constrain_jacobian = jax.jit(_constrain_jacobian_one, static_argnums=0)


def _compiled_gradient(problem: _Problem, y, nobs: int, structured: bool):
    """Gradient of the total log-likelihood from the optimiser's compiled gradient, so that no further
    derivative of the likelihood is compiled: in the unconstrained coordinates as it is (``structured``), else
    in the natural ones through the slopes of the elementwise bijections, ``grad_theta = grad_u / (d theta / d u)``.
    ``None`` for models with transforms of their own (the caller then compiles the gradient)."""

    def in_unconstrained(u_flat):
        return -nobs * np.asarray(_objective_value_and_grad(problem, jnp.asarray(u_flat), y)[1])

    if structured:
        return in_unconstrained
    if hasattr(problem.model, "from_unconstrained") or hasattr(problem.model, "param_transforms"):
        return None  # joint or model-owned transforms: compile the natural-coordinate gradient instead

    def in_natural(theta_flat):
        params = problem.model.params_type(**problem.unravel(jnp.asarray(theta_flat)))
        u_flat = _unconstrain_flat(problem, params)
        # Elementwise bijections (the priors' supports): a diagonal Jacobian.
        slopes = np.diag(np.asarray(_constrain_jacobian(problem, u_flat)))
        return in_unconstrained(u_flat) / slopes

    return in_natural


def _gradient_differences(pointwise_flat, theta, grad_fn=None, rel_step: float | None = None,
                          scheme: str = "central"):
    """Hessian from differences of the exact gradient (``grad_fn``, by default compiled here) and scores from
    differences of the pointwise log-likelihood (one compiled forward pass), symmetrised.

    ``scheme="central"``: steps ``rel_step * max(|theta|, 0.01)`` (``rel_step`` 1e-5) both ways, 2p gradient
    calls, error O(h^2). ``scheme="forward"``: steps ``rel_step * max(|theta|, 1)`` (``rel_step`` 1e-6) one
    way from the point, p + 1 calls, error O(h): about 2e-6 of the largest Hessian entry, while rounding in a
    float64 gradient contributes about 1e-7 at that step.
    """
    if grad_fn is None:
        grad_fn = jax.jit(jax.grad(lambda t: jnp.sum(pointwise_flat(t))))
    point_fn = jax.jit(pointwise_flat)
    p = theta.size
    forward = scheme == "forward"
    if rel_step is None:
        rel_step = 1e-6 if forward else 1e-5
    steps = rel_step * np.maximum(np.abs(theta), 1.0 if forward else 1e-2)
    if forward:
        grad_at, point_at = np.asarray(grad_fn(jnp.asarray(theta))), np.asarray(point_fn(jnp.asarray(theta)))
    hessian = np.zeros((p, p))
    scores = []
    for i in range(p):
        e_i = np.zeros(p)
        e_i[i] = steps[i]
        up = jnp.asarray(theta + e_i)
        if forward:
            hessian[:, i] = (np.asarray(grad_fn(up)) - grad_at) / steps[i]
            scores.append((np.asarray(point_fn(up)) - point_at) / steps[i])
            continue
        down = jnp.asarray(theta - e_i)
        hessian[:, i] = (np.asarray(grad_fn(up)) - np.asarray(grad_fn(down))) / (2 * steps[i])
        scores.append((np.asarray(point_fn(up)) - np.asarray(point_fn(down))) / (2 * steps[i]))
    return 0.5 * (hessian + hessian.T), np.stack(scores, axis=1)


def _finite_difference_derivatives(pointwise_flat, theta, rel_step: float = 1e-4):
    """Central-difference Hessian of the total and Jacobian of the pointwise log-likelihood."""
    p = theta.size
    steps = rel_step * np.maximum(np.abs(theta), 1e-2)

    def total(t):
        return float(jnp.sum(pointwise_flat(jnp.asarray(t))))

    hessian = np.zeros((p, p))
    scores = []
    for i in range(p):
        e_i = np.zeros(p)
        e_i[i] = steps[i]
        scores.append((np.asarray(pointwise_flat(jnp.asarray(theta + e_i)))
                       - np.asarray(pointwise_flat(jnp.asarray(theta - e_i)))) / (2 * steps[i]))
        for j in range(i, p):
            e_j = np.zeros(p)
            e_j[j] = steps[j]
            value = (total(theta + e_i + e_j) - total(theta + e_i - e_j) - total(theta - e_i + e_j)
                     + total(theta - e_i - e_j)) / (4 * steps[i] * steps[j])
            hessian[i, j] = hessian[j, i] = value
    return hessian, np.stack(scores, axis=1)
