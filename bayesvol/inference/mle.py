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

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.stats
from jax.flatten_util import ravel_pytree
from numpyro.distributions import biject_to

from bayesvol.inference.diagnostics import ConvergenceWarning
from bayesvol.models import _base

__all__ = ["MLEResult", "fit", "log_likelihood", "register_loglik"]

_REGISTRY: dict[tuple[type, str], tuple[Callable, bool]] = {}
_DIAGNOSTICS: dict[tuple[type, str], Callable] = {}
_GRADIENT_DIFFERENCE_HESSIAN: set = set()


def register_loglik(model_type: type, method: str, *, differentiable: bool = True,
                    diagnostics: Callable | None = None, hessian: str = "autodiff"):
    """Register ``fn(model, params, y, **options) -> pointwise log-likelihood`` for ``model_type``.

    ``differentiable=False`` makes :func:`fit` use a derivative-free optimiser (Nelder–Mead) and a
    finite-difference Hessian for that method. ``diagnostics(model, params, y, **options) -> dict``, if
    given, is called by :func:`fit` at the estimate (e.g. the Monte Carlo error of a simulated
    likelihood); its entries go to :attr:`MLEResult.diagnostics` and the summary. ``hessian="gradient_differences"``
    takes the Hessian for standard errors by central differences of the autodiff gradient (and the scores by
    central differences of the pointwise values) instead of nested autodiff, for likelihoods whose second
    derivative is costly to compile (e.g. filters with an inner Newton search).
    """
    if hessian not in ("autodiff", "gradient_differences"):
        raise ValueError(f"hessian must be 'autodiff' or 'gradient_differences', got {hessian!r}")

    def decorator(fn):
        if hessian == "gradient_differences":
            _GRADIENT_DIFFERENCE_HESSIAN.add((model_type, method))
        _REGISTRY[(model_type, method)] = (fn, differentiable)
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
    data = _prepare_data(model, y)
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
    num_free : int or None
        Number of free coordinates when it differs from the number of entries (structured matrices such as
        identified loadings or covariance matrices); fixed entries get standard error zero.
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
    options: dict = field(default_factory=dict)
    num_free: int | None = None
    diagnostics: dict = field(default_factory=dict)

    @property
    def num_params(self) -> int:
        """Number of free parameters (fewer than ``labels`` when some entries are fixed or symmetric)."""
        return len(self.labels) if self.num_free is None else self.num_free

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


def _labels(model, params) -> list[str]:
    labels = []
    for name in model.param_names:
        value = np.asarray(getattr(params, name))
        if value.ndim == 0:
            labels.append(name)
        else:
            labels.extend(f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(value.shape))
    return labels


def _transforms(model) -> dict:
    if hasattr(model, "param_transforms"):
        return model.param_transforms()
    priors = model.prior_distributions()
    return {name: biject_to(getattr(priors, name).support) for name in model.param_names}


def fit(model, y, method: str = "exact", *, start=None, num_starts: int | None = None, maxiter: int = 2000,
        gtol: float = 1e-5, warn: bool = True, **options) -> MLEResult:
    """Maximum-likelihood estimation.

    The parameters are optimised in an unconstrained space given by the support of each prior
    (``numpyro.distributions.biject_to``), so Bayesian and frequentist estimation share one parameter
    space; the gradient comes from JAX and the optimiser is SciPy's BFGS. Several start values are tried
    (the model's own ``start_values(y)``, or ``start``) and the best optimum is kept. Standard errors
    come from the exact Hessian of the log-likelihood at the optimum (inverse observed information) and,
    robust to misspecification, from the sandwich with the outer product of per-observation scores.

    Parameters
    ----------
    model : bayesvol model
    y : array_like or pandas object
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
    """
    fn, differentiable = _lookup(model, method)
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
    starts = [_base.as_params(model, s) for s in starts]
    names = model.param_names

    def unconstrain(params):
        return {n: transforms[n].inv(jnp.asarray(getattr(params, n))) for n in names}

    def constrain(u):
        return model.params_type(**{n: transforms[n](u[n]) for n in names})

    _, unravel = ravel_pytree(unconstrain(starts[0]))

    def pointwise(params):
        return fn(model, params, y_values, **options)

    def objective(u_flat):
        value = -jnp.sum(pointwise(constrain(unravel(u_flat)))) / nobs
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    value_and_grad = jax.jit(jax.value_and_grad(objective))
    value_only = jax.jit(objective)

    def scipy_fun(u):
        v, g = value_and_grad(jnp.asarray(u))
        v, g = float(v), np.asarray(g, dtype=np.float64)
        if not np.isfinite(v) or not np.all(np.isfinite(g)):
            return 1e10, np.zeros_like(g)
        return v, g

    best = None
    for params0 in starts:
        u0 = np.asarray(ravel_pytree(unconstrain(params0))[0], dtype=np.float64)
        if not np.isfinite(float(value_only(jnp.asarray(u0)))):
            continue
        if differentiable:
            res = scipy.optimize.minimize(scipy_fun, u0, jac=True, method="BFGS",
                                          options={"maxiter": maxiter, "gtol": gtol})
            grad_norm = float(np.max(np.abs(res.jac)))
            ok = bool(res.success) or (grad_norm < 10 * gtol and np.isfinite(res.fun))
        else:
            res = scipy.optimize.minimize(lambda u: float(value_only(jnp.asarray(u))), u0, method="Nelder-Mead",
                                          options={"maxiter": maxiter * 5, "xatol": 1e-5, "fatol": 1e-7,
                                                   "adaptive": True})
            ok = bool(res.success)
        if best is None or res.fun < best[0].fun:
            best = (res, ok)
    if best is None:
        raise ValueError("the log-likelihood is not finite at any start value; give start values inside the "
                         "support of the data (see the model's documentation)")
    res, converged = best
    theta_hat = constrain(unravel(jnp.asarray(res.x)))
    # A list keeps the order of param_names in cov (a dict would be flattened in sorted key order).
    flat_theta, unravel_list = ravel_pytree([jnp.asarray(getattr(theta_hat, n)) for n in names])

    def unravel_theta(flat):
        return dict(zip(names, unravel_list(flat), strict=True))

    def pointwise_flat(theta_flat):
        return pointwise(model.params_type(**unravel_theta(theta_flat)))

    loglik = float(jnp.sum(jax.jit(pointwise_flat)(flat_theta)))
    # Structured parameters (fixed entries, symmetric matrices) have fewer free coordinates than entries;
    # then derivatives are taken in the unconstrained coordinates and mapped back by the delta method.
    u_hat = jnp.asarray(res.x)
    structured = u_hat.size != flat_theta.size
    if structured:
        def pointwise_coords(u):
            return pointwise(constrain(unravel(u)))
        coords = u_hat
    else:
        pointwise_coords, coords = pointwise_flat, flat_theta
    by_differences = any((cls, method) in _GRADIENT_DIFFERENCE_HESSIAN for cls in type(model).__mro__)
    if differentiable and by_differences:
        if structured:   # the optimiser's compiled gradient is already in these coordinates
            def total_grad(u):
                return -nobs * value_and_grad(u)[1]
        else:
            total_grad = jax.jit(jax.grad(lambda t: jnp.sum(pointwise_coords(t))))
        hessian, scores = _gradient_difference_derivatives(total_grad, pointwise_coords, np.asarray(coords))
    elif differentiable:
        # Compiled once each, rather than run op by op.
        hessian = np.asarray(jax.jit(jax.hessian(lambda t: jnp.sum(pointwise_coords(t))))(coords))
        scores = np.asarray(jax.jit(jax.jacfwd(pointwise_coords))(coords))
    else:
        hessian, scores = _finite_difference_derivatives(pointwise_coords, np.asarray(coords))
    cov, robust_cov = _covariances(hessian, scores)
    fixed = np.zeros(flat_theta.size, dtype=bool)
    if structured:
        jac = np.asarray(jax.jacfwd(lambda u: ravel_pytree(
            [getattr(constrain(unravel(u)), n) for n in names])[0])(u_hat))
        cov, robust_cov = jac @ cov @ jac.T, jac @ robust_cov @ jac.T
        fixed = np.all(jac == 0.0, axis=1)     # entries fixed by the parametrisation (e.g. identification)
    # A non-positive variance (information not positive definite, e.g. a noisy simulated likelihood) gives
    # NaN, not a misleading zero standard error; entries fixed by the parametrisation get zero.
    se_flat, robust_flat = (np.where(fixed, 0.0, np.sqrt(np.where(np.diag(c) > 0, np.diag(c), np.nan)))
                            for c in (cov, robust_cov))
    params_out = {n: _to_python(getattr(theta_hat, n)) for n in names}
    se = {n: _to_python(v) for n, v in unravel_theta(jnp.asarray(se_flat)).items()}
    robust_se = {n: _to_python(v) for n, v in unravel_theta(jnp.asarray(robust_flat)).items()}
    at_boundary = [n for n in names if np.any(np.abs(np.asarray(unconstrain(theta_hat)[n])) > 12.0)]
    message = str(res.message)
    diagnose = next((_DIAGNOSTICS[(cls, method)] for cls in type(model).__mro__ if (cls, method) in _DIAGNOSTICS),
                    None)
    diagnostics = dict(diagnose(model, theta_hat, y_values, **options)) if diagnose else {}
    if not converged and warn:
        warnings.warn(f"maximum likelihood for {model!r} ({method}) did not converge: {message}",
                      ConvergenceWarning, stacklevel=2)
    return MLEResult(model=model, method=method, params=params_out, se=se, robust_se=robust_se, cov=cov,
                     robust_cov=robust_cov, loglik=loglik, nobs=nobs, converged=converged, message=message,
                     at_boundary=at_boundary, labels=_labels(model, theta_hat), num_starts=len(starts),
                     options=dict(options), num_free=int(u_hat.size) if structured else None,
                     diagnostics=diagnostics)


def _to_python(value):
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr


def _covariances(hessian, scores):
    information = -0.5 * (hessian + hessian.T)
    try:
        cov = np.linalg.inv(information)
        if not np.all(np.isfinite(cov)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(information)
    outer = scores.T @ scores
    return cov, cov @ outer @ cov


def _gradient_difference_derivatives(total_grad, pointwise, theta, rel_step: float = 1e-5):
    """Hessian by central differences of the gradient (symmetrised) and scores by central differences."""
    p = theta.size
    steps = rel_step * np.maximum(np.abs(theta), 1.0)
    columns, scores = [], []
    for i in range(p):
        e_i = np.zeros(p)
        e_i[i] = steps[i]
        up, down = jnp.asarray(theta + e_i), jnp.asarray(theta - e_i)
        columns.append((np.asarray(total_grad(up)) - np.asarray(total_grad(down))) / (2 * steps[i]))
        scores.append((np.asarray(pointwise(up)) - np.asarray(pointwise(down))) / (2 * steps[i]))
    hessian = np.stack(columns, axis=1)
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
