"""Newton's method for ``max_x log g(x) - (x - m)' P^{-1} (x - m) / 2`` and the Laplace approximation at its
maximiser: the one mode finder of the filters (the Bellman filter's update, hence EIS's starting kernel, and the
auxiliary particle filter's proposal).

Fixed numbers of iterations (no ``while_loop``), so the result is reverse-differentiable, and a small
vectorised backtracking search over step lengths, so a step never lowers the objective.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bayesvol.models._linalg import cho_solve, cholesky, logdet_from_cholesky

# Step lengths tried at each iteration, down to very short ones for far-off starts where a full step
# overflows (e.g. exp(-h) in SV); 0 keeps the current point when no step improves the objective.
# numpy, not jnp: a module-level jnp array would start the JAX backend when the package is imported.
_STEP_LENGTHS = np.array([1.0, 0.5, 0.25, 0.125, 2.0**-4, 2.0**-6, 2.0**-9, 2.0**-13, 2.0**-18, 0.0])


class NewtonResult(NamedTuple):
    """Maximiser ``x`` and the value, gradient and Hessian of ``log g`` there."""

    x: jax.Array
    log_g: jax.Array
    grad_log_g: jax.Array
    hessian_log_g: jax.Array


def maximise(log_g, prior_mean, prior_precision, num_steps: int, x0=None) -> NewtonResult:
    r"""Maximise $J(x) = \log g(x) - \tfrac12 (x - m)^\top \Lambda (x - m)$ over $x \in \mathbb{R}^d$.

    Each iteration takes the Newton direction $(\Lambda - \nabla^2 \log g)^{-1} \nabla J$, falling back
    to the prior-preconditioned gradient $\Lambda^{-1} \nabla J$ where $\Lambda - \nabla^2 \log g$
    is not positive definite (a non-concave $\log g$), and keeps the best of a few step lengths.
    Derivatives are exact (autodiff). ``log_g`` maps a flat ``(d,)`` state to a scalar.
    """
    x0 = prior_mean if x0 is None else x0
    grad_fn = jax.grad(log_g)
    hess_fn = jax.hessian(log_g)

    def objective(x):
        diff = x - prior_mean
        value = log_g(x) - 0.5 * diff @ prior_precision @ diff
        return jnp.where(jnp.isnan(value), -jnp.inf, value)

    def body(x, _):
        gradient = grad_fn(x) - prior_precision @ (x - prior_mean)
        curvature = prior_precision - hess_fn(x)
        positive = jnp.all(jnp.isfinite(cholesky(lax.stop_gradient(curvature))))
        curvature = jnp.where(positive, curvature, prior_precision)
        direction = cho_solve(cholesky(curvature), gradient)
        direction = jnp.where(jnp.all(jnp.isfinite(direction)), direction, 0.0)
        candidates = x[None, :] + _STEP_LENGTHS[:, None] * direction[None, :]
        values = jax.vmap(objective)(candidates)
        return candidates[jnp.argmax(values)], None

    x, _ = lax.scan(body, x0, None, length=num_steps)
    return NewtonResult(x=x, log_g=log_g(x), grad_log_g=grad_fn(x), hessian_log_g=hess_fn(x))


def elementwise_derivatives(log_g):
    """First and second derivatives of an elementwise ``log_g`` (``(N,) -> (N,)``, element ``i`` depending on
    ``x[i]`` only): two functions of ``x``, one gradient of the sum and one Jacobian-vector product."""
    grad_fn = jax.grad(lambda x: jnp.sum(log_g(x)))

    def second(x):
        return jax.jvp(grad_fn, (x,), (jnp.ones_like(x),))[1]

    return grad_fn, second


def maximise_elementwise(log_g, prior_mean, prior_variance, num_steps: int) -> NewtonResult:
    r"""Many independent scalar problems at once: ``log_g`` maps ``x`` of shape ``(N,)`` to ``(N,)`` with
    element ``i`` depending on ``x[i]`` only (one particle each), so first and second derivatives of all
    problems come from one gradient and one Jacobian-vector product (`elementwise_derivatives`). Same
    iteration as `maximise`; ``hessian_log_g`` holds the second derivatives, shape ``(N,)``."""
    grad_fn, second = elementwise_derivatives(log_g)

    def objective(x):
        value = log_g(x) - 0.5 * (x - prior_mean) ** 2 / prior_variance
        return jnp.where(jnp.isnan(value), -jnp.inf, value)

    def body(x, _):
        gradient = grad_fn(x) - (x - prior_mean) / prior_variance
        curvature = 1.0 / prior_variance - second(x)
        curvature = jnp.where(lax.stop_gradient(curvature) > 0.0, curvature, 1.0 / prior_variance)
        direction = gradient / curvature
        direction = jnp.where(jnp.isfinite(direction), direction, 0.0)
        candidates = x[None, :] + _STEP_LENGTHS[:, None] * direction[None, :]
        values = jax.vmap(objective)(candidates)
        best = jnp.argmax(values, axis=0)
        return jnp.take_along_axis(candidates, best[None, :], axis=0)[0], None

    x, _ = lax.scan(body, prior_mean, None, length=num_steps)
    return NewtonResult(x=x, log_g=log_g(x), grad_log_g=grad_fn(x), hessian_log_g=second(x))


class LaplaceResult(NamedTuple):
    """Mode and covariance of the Laplace approximation, and the log of its integral."""

    mean: jax.Array
    covariance: jax.Array
    log_evidence: jax.Array


def laplace(log_g, prior_mean, prior_covariance, num_steps: int) -> LaplaceResult:
    r"""Laplace approximation of $g(x) N(x; m, P)$ for a flat state $x \in \mathbb{R}^n$.

    The mode $\hat x$ comes from `maximise` (``num_steps`` Newton steps from $m$); its
    covariance is $(P^{-1} - \nabla^2 \log g(\hat x))^{-1}$ (the prior's where that information is
    numerically not positive definite) and

    $$
    \log \int g(x) N(x; m, P)\, dx \approx \log g(\hat x) - \tfrac12 (\hat x - m)^\top P^{-1} (\hat x - m)
    - \tfrac12 \log\det P + \tfrac12 \log\det \hat P,
    $$

    exact when $\log g$ is quadratic in $x$.
    """
    identity = jnp.eye(prior_mean.shape[0])
    prior_chol = cholesky(prior_covariance)
    precision = cho_solve(prior_chol, identity)
    found = maximise(log_g, prior_mean, precision, num_steps)
    information = precision - found.hessian_log_g
    information = 0.5 * (information + information.T)
    info_chol = cholesky(lax.stop_gradient(information))
    # At a maximum the information is positive semi-definite; guard the numerically singular case.
    positive = jnp.all(jnp.isfinite(info_chol))
    information = jnp.where(positive, information, precision)
    info_chol = cholesky(information)
    covariance = cho_solve(info_chol, identity)
    diff = found.x - prior_mean
    log_evidence = (found.log_g - 0.5 * diff @ precision @ diff - 0.5 * logdet_from_cholesky(prior_chol)
                    - 0.5 * logdet_from_cholesky(info_chol))
    log_evidence = jnp.where(jnp.isnan(log_evidence), -jnp.inf, log_evidence)
    return LaplaceResult(found.x, 0.5 * (covariance + covariance.T), log_evidence)
