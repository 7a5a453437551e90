"""Standard errors, covariances and boundary flags of maximum-likelihood estimates, for one series or many.

The single fit (`.mle`) and the batch fit (`.batch`) both take their derivatives, covariance
matrices (inverse observed information and the sandwich), standard errors and boundary flags from here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayesvol.inference._problem import Problem, objective_value_and_grad, split, unconstrain_flat

__all__ = ["at_boundary", "compiled_gradient", "covariances", "finite_difference_derivatives",
           "gradient_differences", "inside_supports", "loglik_derivatives", "loglik_derivatives_one",
           "reliability_warnings", "rough_surface_warning", "stacked_boundaries", "stacked_covariances",
           "standard_errors"]


def loglik_derivatives_one(problem: Problem, theta_flat, y):
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


loglik_derivatives = jax.jit(loglik_derivatives_one, static_argnums=0)


def inside_supports(model, values: dict) -> dict:
    """Estimates that rounded onto the edge of their support (``exp(u)`` underflowing to 0 for ``u`` far
    out) are moved to the nearest floating-point number inside, so the result can be passed back to
    [`log_likelihood`][bayesvol.log_likelihood], ``forecast`` and ``simulate``; such parameters are listed in
    ``at_boundary``."""
    priors = model.prior_distributions()
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


def standard_errors(cov) -> np.ndarray:
    """Square roots of the variances (of one covariance matrix, or of a stack of them along the last two
    axes); NaN where the information matrix gives a non-positive variance."""
    variances = np.diagonal(cov, axis1=-2, axis2=-1)
    return np.where(variances > 0, np.sqrt(np.abs(variances)), np.nan)


# Boundary rule: an unconstrained coordinate beyond FAR_OUT is on the edge; beyond WELL_OUT it is when the
# score pressure exceeds PRESSURE (see at_boundary).
FAR_OUT, WELL_OUT, PRESSURE = 12.0, 6.0, 0.05


def _edge(far_out, pressure):
    return (far_out > FAR_OUT) | ((far_out > WELL_OUT) & (np.nan_to_num(pressure) > PRESSURE))


def _pressure(scores):
    """``|sum_t s_t| / sqrt(sum_t s_t^2)`` over the time axis (second to last) of per-observation scores."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(scores.sum(axis=-2)) / np.sqrt(np.sum(scores**2, axis=-2))


def at_boundary(problem: Problem, u_flat, scores) -> list[str]:
    """Parameters whose estimate sits on the edge of a bounded support.

    Either the unconstrained value is far out (``|u| > 12``), or it is well out (``|u| > 6``) and the
    optimiser stopped there only because the transform flattens out: the score in the natural parameter,
    ``|sum_t s_t| / sqrt(sum_t s_t^2)``, is not near zero (above 0.05; at an interior optimum reached to the
    gradient tolerance it is of order ``gtol * sqrt(T)`` divided by the transform's slope), so the data push
    the estimate beyond the edge. Only the model's ``bounded_free_names()`` (by default: parameters whose
    support is not the real line) have an edge.
    """
    u_named = split(u_flat, problem.names, problem.free_shapes)
    pressure = split(_pressure(scores), problem.names, problem.shapes)

    def on_edge(n):
        far_out = np.abs(np.asarray(u_named[n]))
        if far_out.shape != np.shape(pressure[n]):  # e.g. a matrix parameter with a differently shaped transform
            return bool(np.any(far_out > FAR_OUT))
        return bool(np.any(_edge(far_out, pressure[n])))

    bounded = set(problem.model.bounded_free_names())
    return [n for n in problem.names if n in bounded and on_edge(n)]


def stacked_boundaries(problem: Problem, u_hat, scores, names_series) -> dict:
    """Series name -> parameters on the edge of their support, by the rule of `at_boundary`, for all
    series at once when every parameter is a scalar (``u_hat`` (N, p), ``scores`` (N, T, p))."""
    if any(shape != () for shape in problem.free_shapes + problem.shapes):
        edges = {name: at_boundary(problem, u_hat[j], scores[j]) for j, name in enumerate(names_series)}
        return {name: edge for name, edge in edges.items() if edge}
    bounded = set(problem.model.bounded_free_names())
    edge = _edge(np.abs(u_hat), _pressure(scores)) & np.array([n in bounded for n in problem.names])
    return {name: [n for n, flag in zip(problem.names, edge[j], strict=True) if flag]
            for j, name in enumerate(names_series) if edge[j].any()}


def covariances(hessian, scores):
    """Inverse information and sandwich covariance from the Hessian of the total log-likelihood and the scores.

    The information is inverted after scaling it to unit diagonal (parameters of very different magnitudes,
    e.g. ``a ~ 1e4`` beside ``c ~ 1e-2``, would otherwise make an invertible matrix look singular).
    """
    information = -0.5 * (hessian + hessian.T)
    root = np.sqrt(np.abs(np.diag(information)))
    root = np.where(np.isfinite(root) & (root > 0.0), root, 1.0)
    scaled = information / np.outer(root, root)
    try:
        inverse = np.linalg.inv(scaled)
        # A redundant parametrisation (both triangles of a symmetric matrix) has a singular information.
        if not np.all(np.isfinite(inverse)) or not np.allclose(scaled @ inverse, np.eye(len(inverse)), atol=1e-6):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        inverse = np.linalg.pinv(scaled)
    cov = inverse / np.outer(root, root)
    outer = scores.T @ scores
    return cov, cov @ outer @ cov


def stacked_covariances(hessians, scores):
    """`covariances` for every series at once (N, p, p); a series whose information matrix is singular or
    badly conditioned falls back to the single-series routine."""
    information = -0.5 * (hessians + np.swapaxes(hessians, 1, 2))
    try:
        covs = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        covs = np.full_like(information, np.nan)
    eye = np.eye(information.shape[1])
    ok = np.all(np.isfinite(covs), axis=(1, 2))
    ok[ok] = np.all(np.isclose(information[ok] @ covs[ok], eye, rtol=1e-5, atol=1e-6), axis=(1, 2))
    outer = np.einsum("ntp,ntq->npq", scores, scores)
    robust = covs @ outer @ covs
    for j in np.flatnonzero(~ok):
        covs[j], robust[j] = covariances(hessians[j], scores[j])
    return covs, robust


def constrain_jacobian_one(problem: Problem, u_flat):
    return jax.jacfwd(lambda u: problem.ravel(problem.constrain(u)._asdict()))(u_flat)


constrain_jacobian = jax.jit(constrain_jacobian_one, static_argnums=0)


def compiled_gradient(problem: Problem, y, nobs: int, structured: bool):
    """Gradient of the total log-likelihood from the optimiser's compiled gradient, so that no further
    derivative of the likelihood is compiled: in the unconstrained coordinates as it is (``structured``), else
    in the natural ones through the slopes of the elementwise bijections, ``grad_theta = grad_u / (d theta / d u)``.
    ``None`` for models with transforms of their own (the caller then compiles the gradient)."""

    def in_unconstrained(u_flat):
        # The mean over nobs steps, as the optimiser's objective takes it (y may be padded beyond nobs).
        return -nobs * np.asarray(objective_value_and_grad(problem, jnp.asarray(u_flat), y, float(nobs))[1])

    if structured:
        return in_unconstrained
    if not problem.model.elementwise_transforms:
        return None  # joint or model-owned transforms: compile the natural-coordinate gradient instead

    def in_natural(theta_flat):
        params = problem.model.params_type(**problem.unravel(jnp.asarray(theta_flat)))
        u_flat = unconstrain_flat(problem, params)
        # Elementwise bijections (the priors' supports): a diagonal Jacobian.
        slopes = np.diag(np.asarray(constrain_jacobian(problem, u_flat)))
        return in_unconstrained(u_flat) / slopes

    return in_natural


def gradient_differences(pointwise_flat, theta, grad_fn=None, rel_step: float | None = None,
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


def finite_difference_derivatives(pointwise_flat, theta, rel_step: float = 1e-4):
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


# The information matrix scaled to unit diagonal (a correlation-like matrix, eigenvalues between 0 and p) is
# singular for maximum likelihood's purposes below this smallest eigenvalue: the estimates of some combination
# of parameters are then correlated beyond 1 - 1e-9, i.e. the data do not pin that combination down.
# Exact Hessians (autodiff) are accurate to ~1e-12 relative; differences of the gradient to ~1e-6 of the
# largest entry, so this threshold is far above their rounding for well-identified models.
SINGULAR_EIGENVALUE = 1e-9

# How many labels of the weakest direction a message names.
_NAMED_IN_DIRECTION = 3


def reliability_warnings(labels, se_flat, fixed, boundary, estimates, loglik, information,
                         information_labels=None) -> list[str]:
    """Why the estimates of one maximum-likelihood fit cannot be taken at face value (empty when nothing is wrong).

    Each entry names a cause and a remedy. Checks, on the problem as optimised (standardised units):

    * a log-likelihood or estimate that is not finite (a degenerate surface);
    * parameters on (or beyond) the edge of their support, ``boundary`` (see `at_boundary`): zero
      variances included;
    * standard errors that are not finite (non-positive variances in the inverse information);
    * an information matrix (negative Hessian) that is not positive definite, or singular: the smallest
      eigenvalue of the information scaled to unit diagonal below `SINGULAR_EIGENVALUE`, so that some
      combination of parameters is not identified (named by the largest entries of its eigenvector).

    Parameters in ``boundary`` and entries fixed by identification (``fixed``) are left out of the
    eigenvalue check, whose cause is then reported once, as the boundary.

    Parameters
    ----------
    labels : list of str
        Label of each flattened natural parameter (of ``se_flat``, ``fixed`` and ``estimates``).
    se_flat, estimates : numpy.ndarray
    fixed : numpy.ndarray of bool
    boundary : list of str
        Parameter names on the edge of their support.
    loglik : float
    information : numpy.ndarray
        Minus the Hessian of the total log-likelihood at the estimate (q x q).
    information_labels : list of str, optional
        Labels of the coordinates of ``information`` (``name[...]`` or ``name``) when they are not the natural
        parameters (structured parameters differentiated in their unconstrained coordinates); by default
        ``labels``, with ``fixed`` entries left out.
    """
    labels = list(labels)
    out = []
    if not np.isfinite(loglik):
        out.append(f"the maximised log-likelihood is not finite ({loglik}); the estimate lies where the model "
                   "cannot describe the data: give other start values or check the data")
    not_finite = [lab for lab, v in zip(labels, np.ravel(estimates), strict=True) if not np.isfinite(v)]
    if not_finite:
        out.append(f"estimates not finite: {', '.join(not_finite)}; the optimum lies beyond the parameter space: "
                   "check the data and the model's documentation")
    if boundary:
        out.append(f"at the edge of the parameter space: {', '.join(boundary)} (a variance or loading estimated at "
                   "zero, or persistence at one); the standard errors there do not hold: fit a model without "
                   "that term, or check the data")
    bad_se = [lab for lab, s, f in zip(labels, np.ravel(se_flat), np.ravel(fixed), strict=True)
              if not f and not np.isfinite(s)]
    if bad_se:
        out.append(f"standard errors not finite for {', '.join(bad_se)}: the information matrix has non-positive "
                   "variances there (no maximum in those directions); the estimates are not reliable: try "
                   "other start values, a simpler model, or more data")
    if information_labels is None:
        information_labels, free = labels, ~np.ravel(fixed)
    else:
        information_labels, free = list(information_labels), np.ones(len(information_labels), dtype=bool)
    skip = set(boundary)
    keep = np.array([f and lab.split("[")[0] not in skip for f, lab in zip(free, information_labels, strict=True)],
                    dtype=bool)
    info = np.asarray(information, dtype=np.float64)
    if not keep.any():
        return out
    info = 0.5 * (info + info.T)[np.ix_(keep, keep)]
    kept = [lab for lab, k in zip(information_labels, keep, strict=True) if k]
    if not np.all(np.isfinite(info)):
        out.append("the information matrix (Hessian of the log-likelihood) is not finite at the estimate: a "
                   "degenerate likelihood surface; give other start values or check the data")
        return out
    diagonal = np.diag(info)
    flat = [lab for lab, d in zip(kept, diagonal, strict=True) if not d > 0.0]
    if flat:
        out.append(f"the log-likelihood is flat or curves upwards in {', '.join(flat)} at the estimate (no "
                   "maximum in that direction): those parameters are not identified by these data; fix or "
                   "drop them, or give other start values")
        return out
    root = np.sqrt(diagonal)
    eigenvalues, eigenvectors = np.linalg.eigh(info / np.outer(root, root))
    if eigenvalues[0] < SINGULAR_EIGENVALUE:
        weights = np.abs(eigenvectors[:, 0])
        named = [kept[i] for i in np.argsort(weights)[::-1][:_NAMED_IN_DIRECTION] if weights[i] > 0.1]
        kind = "not positive definite (not a maximum)" if eigenvalues[0] < -SINGULAR_EIGENVALUE else "singular"
        out.append(f"the information matrix is {kind}: smallest eigenvalue {eigenvalues[0]:.3g} of its "
                   f"unit-diagonal scaling, in the direction of {', '.join(named)}; these parameters are not "
                   "separately identified by the data (a redundant parameter or a degenerate likelihood surface) "
                   "and their standard errors are meaningless: simplify the model, fix one of them, or give "
                   "more data")
    return out


def rough_surface_warning(method: str, smooth_methods) -> str:
    """The warning of a fit whose standard errors come from the Hessian of a rough simulated likelihood.

    With fixed random numbers a particle filter's log-likelihood is continuous in the parameters but wiggles at
    the scale of its Monte Carlo noise (each resampling step moves with them), so its second differences
    measure those wiggles rather than the curvature of the likelihood: standard errors several times too small,
    or not finite. ``smooth_methods`` are the family's likelihoods whose Hessian can replace it.
    """
    remedy = (f"give se_method={smooth_methods[0]!r} (the Hessian of that smooth likelihood at this estimate) "
              f"or fit by {' or '.join(repr(m) for m in smooth_methods)}" if smooth_methods
              else "estimate by a posterior sampler instead")
    return (f"standard errors from a particle-filter likelihood ({method!r}) are unreliable: its surface is "
            "rough at the scale of its Monte Carlo noise, so its Hessian does not measure the likelihood's "
            f"curvature; {remedy}")
