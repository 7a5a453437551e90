r"""Matrix algebra of the Wishart SV model shared by the model, its EIS likelihood and its NumPyro program.

Conventions: :math:`A = L L'` with :math:`L` the lower Cholesky factor (the square root in the model's
equation :math:`S_{t-1} = \nu^{-1} A^{1/2}\,\Omega_{t-1}^{d}\,A^{1/2\prime}`, as in seed 003), matrix powers of
symmetric positive-definite matrices by eigendecomposition
(:func:`bayesvol.distributions.matrix_power_psd`, whose derivative stays finite at repeated eigenvalues).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular

from bayesvol.distributions.wishart import matrix_power_psd

LOG_2 = 0.6931471805599453
LOG_2PI = 1.8378770664093453


def _symmetrize(matrix):
    return 0.5 * (matrix + jnp.swapaxes(matrix, -1, -2))


def logdet_from_cholesky(chol):
    """``log|X|`` from the lower Cholesky factor of ``X``."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def scale_inverse(precision_prev, nu, d, chol_a, logdet_prev=None):
    r"""Inverse Wishart scale :math:`S^{-1}_{t-1} = \nu L'^{-1}\Omega_{t-1}^{-d} L^{-1}` and :math:`\log|S_{t-1}|`.

    ``precision_prev`` may carry leading batch axes (particles); ``logdet_prev`` is
    :math:`\log|\Omega_{t-1}|` when the caller already has it.
    """
    k = chol_a.shape[-1]
    neg_power = matrix_power_psd(precision_prev, -d)
    chol_a_inv = solve_triangular(chol_a, jnp.eye(k, dtype=chol_a.dtype), lower=True)
    s_inv = nu * jnp.swapaxes(chol_a_inv, -1, -2) @ neg_power @ chol_a_inv
    if logdet_prev is None:
        logdet_prev = jnp.linalg.slogdet(precision_prev)[1]
    logdet_s = logdet_from_cholesky(chol_a) + d * logdet_prev - k * jnp.log(nu)
    return _symmetrize(s_inv), logdet_s


def scale_matrix(precision_prev, nu, d, chol_a):
    r"""Wishart scale :math:`S_{t-1} = \nu^{-1} L\,\Omega_{t-1}^{d} L'` (lower Cholesky factor :math:`L` of A)."""
    return _symmetrize(chol_a @ matrix_power_psd(precision_prev, d) @ jnp.swapaxes(chol_a, -1, -2) / nu)


def steady_state(chol_a, d, num_iterations: int = 100):
    r"""Fixed point :math:`\bar\Omega = L\,\bar\Omega^{d} L'` of the conditional-mean map.

    The map is a contraction with factor :math:`d` in Thompson's part metric (:math:`X \mapsto X^d` is
    operator monotone and homogeneous of degree :math:`d`, congruence is an isometry), so the fixed point
    is unique. The iteration starts from :math:`A^{1/(1-d)}`, the exact fixed point when :math:`L` is
    replaced by the symmetric square root, and runs a fixed number of steps so that it is differentiable.
    """
    a = chol_a @ jnp.swapaxes(chol_a, -1, -2)
    start = matrix_power_psd(a, 1.0 / (1.0 - d))

    def step(_, omega):
        return _symmetrize(chol_a @ matrix_power_psd(omega, d) @ jnp.swapaxes(chol_a, -1, -2))

    return lax.fori_loop(0, num_iterations, step, start)
