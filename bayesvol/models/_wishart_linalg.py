r"""Matrix algebra of the Wishart SV model in the model's own convention, shared by the model and its filters.

Conventions: $A = L L'$ with $L$ the lower Cholesky factor (the square root in the model's
equation $S_{t-1} = \nu^{-1} A^{1/2}\,\Omega_{t-1}^{d}\,A^{1/2\prime}$, as in seed 003), matrix powers of
symmetric positive-definite matrices by eigendecomposition
([`bayesvol.distributions.matrix_power_psd`][bayesvol.distributions.matrix_power_psd], whose derivative stays finite at
repeated eigenvalues). The scale itself is computed in one place,
`bayesvol.distributions.wishart.wishart_sv_scale_from_root`; this module binds it to the Cholesky root.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular

from bayesvol.distributions.wishart import wishart_sv_scale_from_root


def scale_matrix(precision_prev, nu, d, chol_a):
    r"""Wishart scale $S_{t-1} = \nu^{-1} L\,\Omega_{t-1}^{d} L'$ (lower Cholesky factor $L$ of A)."""
    return wishart_sv_scale_from_root(chol_a, precision_prev, d, nu)


def scale_inverse(precision_prev, nu, d, chol_a, logdet_prev=None):
    r"""Inverse Wishart scale $S^{-1}_{t-1} = \nu L'^{-1}\Omega_{t-1}^{-d} L^{-1}$ and $\log|S_{t-1}|$.

    ``precision_prev`` may carry leading batch axes (particles); ``logdet_prev`` is
    $\log|\Omega_{t-1}|$ when the caller already has it.
    """
    return wishart_sv_scale_from_root(chol_a, precision_prev, d, nu, inverse=True, lower=True,
                                      logdet_prev=logdet_prev)


def conditional_mean(precision_prev, d, chol_a):
    r"""$E[\Omega_t \mid \Omega_{t-1}] = L\,\Omega_{t-1}^{d} L'$ (the scale with $\nu = 1$)."""
    return scale_matrix(precision_prev, 1.0, d, chol_a)


# Largest |log eigenvalue| of the start A^{1/(1-d)}: beyond it the power overflows (or underflows) a double.
_LOG_EIGENVALUE_LIMIT = 700.0
# Newton passes of the steady-state solver; it converges quadratically, in about 4 to 8 passes from its start.
_NEWTON_PASSES = 30
# Relative change (to the largest entry) below which the passes stop: a few units of round-off.
_NEWTON_TOLERANCE = 1e-15


def log_steady_state_spectrum(A, d):
    r"""Smallest and largest eigenvalue of $A^{1/(1-d)}$ as logs: the order of magnitude of $\bar\Omega$.

    $\log|\bar\Omega| = \log|A|/(1-d)$ exactly (take determinants in $\bar\Omega = L\bar\Omega^d L'$),
    and with the symmetric root of $A$ the fixed point is $A^{1/(1-d)}$ itself, so these logs show
    how far the stationary precision is from 1 (numpy arrays, for parameter checks).
    """
    import numpy as np

    log_eigenvalues = np.log(np.linalg.eigvalsh(np.asarray(A, dtype=np.float64))) / (1.0 - float(d))
    return float(log_eigenvalues.min()), float(log_eigenvalues.max())


def _fixed_point_residual(omega, d, chol_a):
    """Mean map minus its argument, whitened by the Cholesky factor of the argument (scale free)."""
    chol = jnp.linalg.cholesky(omega)
    gap = conditional_mean(omega, d, chol_a) - omega
    whitened = solve_triangular(chol, solve_triangular(chol, gap, lower=True).T, lower=True)
    return jnp.max(jnp.abs(whitened))


def _solve_steady_state(chol_a, d):
    r"""Newton's method for $\bar\Omega = L\bar\Omega^d L'$, falling back to the contraction step.

    The plain iteration $\Omega \mapsto L\Omega^d L'$ contracts by the factor $d$ only, so it needs
    thousands of passes at $d = 0.999$. Newton solves $(I - J)\,\Delta = F(\Omega) - \Omega$, with
    $J$ the derivative of the mean map $F$, which stays invertible for $d < 1$ (its spectral
    radius is at most $d$ in the part metric). A step that would leave the positive-definite cone is
    replaced by the contraction step $F(\Omega)$, which stays inside it.
    """
    k = chol_a.shape[-1]
    a = chol_a @ chol_a.T
    # A^{1/(1-d)}, exact when L is replaced by the symmetric root; its log-spectrum is clamped to the range
    # of a double so that parameters whose fixed point is out of range give NaN below, not an overflow here.
    log_values, vectors = jnp.linalg.eigh(0.5 * (a + a.T))
    log_power = jnp.clip(jnp.log(jnp.maximum(log_values, jnp.finfo(a.dtype).tiny)) / (1.0 - d),
                         -_LOG_EIGENVALUE_LIMIT, _LOG_EIGENVALUE_LIMIT)
    start = (vectors * jnp.exp(log_power)) @ vectors.T
    eye = jnp.eye(k * k, dtype=a.dtype)

    def newton(state):
        omega, _, count = state
        mean = conditional_mean(omega, d, chol_a)
        jac = jax.jacfwd(lambda om: conditional_mean(om, d, chol_a))(omega).reshape(k * k, k * k)
        step = jnp.linalg.solve(eye - jac, (mean - omega).reshape(-1)).reshape(k, k)
        candidate = omega + 0.5 * (step + step.T)
        inside = jnp.all(jnp.isfinite(jnp.linalg.cholesky(candidate)))
        new = jnp.where(inside, candidate, mean)
        change = jnp.max(jnp.abs(new - omega)) / jnp.max(jnp.abs(new))
        return new, change, count + 1

    def running(state):
        _, change, count = state
        return (count < _NEWTON_PASSES) & (change > _NEWTON_TOLERANCE)

    state = (start, jnp.asarray(jnp.inf, dtype=a.dtype), jnp.zeros((), dtype=jnp.int32))
    return lax.while_loop(running, newton, state)[0]


@jax.custom_jvp
def _steady_state(chol_a, d):
    return _solve_steady_state(lax.stop_gradient(chol_a), lax.stop_gradient(d))


@_steady_state.defjvp
def _steady_state_jvp(primals, tangents):
    # Implicit differentiation of Omega = F(Omega; L, d): (I - dF/dOmega) dOmega = dF/dL dL + dF/dd dd.
    chol_a, d = primals
    omega = _steady_state(chol_a, d)
    k = omega.shape[-1]
    _, forcing = jax.jvp(lambda chol, dd: conditional_mean(omega, dd, chol), (chol_a, d), tangents)
    jac = jax.jacfwd(lambda om: conditional_mean(om, d, chol_a))(omega).reshape(k * k, k * k)
    omega_dot = jnp.linalg.solve(jnp.eye(k * k, dtype=omega.dtype) - jac, forcing.reshape(-1)).reshape(k, k)
    return omega, 0.5 * (omega_dot + omega_dot.T)


def steady_state(chol_a, d):
    r"""Fixed point $\bar\Omega = L\,\bar\Omega^{d} L'$ of the conditional-mean map ($\nu S$).

    The map is a contraction with factor $d$ in Thompson's part metric ($X \mapsto X^d$ is
    operator monotone and homogeneous of degree $d$, congruence is an isometry), so the fixed point
    is unique. It is found by Newton's method from $A^{1/(1-d)}$ (the exact fixed point when $L$
    is replaced by the symmetric square root), which converges in a few passes at every $d < 1$, where
    the plain iteration would need of the order of $30/(1-d)$ passes. The derivative with respect to
    $L$ and $d$ is the implicit one, $(I - \partial F/\partial\Omega)^{-1}$ times the
    derivative of the map $F$ at the fixed point, so it does not differentiate through the passes.

    ``chol_a`` (..., k, k) and ``d`` (...) may carry leading batch axes.
    """
    chol_a = jnp.asarray(chol_a, dtype=float)
    d = jnp.asarray(d, dtype=float)
    return jnp.vectorize(_steady_state, signature="(k,k),()->(k,k)")(chol_a, d)
