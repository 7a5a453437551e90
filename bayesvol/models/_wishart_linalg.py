r"""Matrix algebra of the Wishart SV model shared by the model, its EIS likelihood and its particle filter.

Conventions: :math:`A = L L'` with :math:`L` the lower Cholesky factor (the square root of the model's
equation :math:`S_{t-1} = \nu^{-1} A^{1/2}\,\Omega_{t-1}^{d}\,A^{1/2\prime}`), matrix powers of symmetric
positive-definite matrices through their eigendecomposition.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import multigammaln

LOG_2 = 0.6931471805599453
LOG_2PI = 1.8378770664093453


def _symmetrize(matrix):
    return 0.5 * (matrix + jnp.swapaxes(matrix, -1, -2))


def _power_divided_differences(eigenvalues, power):
    r"""First divided differences of :math:`\lambda \mapsto \lambda^p` on the eigenvalues.

    :math:`G_{ij} = (\lambda_i^p - \lambda_j^p)/(\lambda_i - \lambda_j)`, and :math:`p\lambda_i^{p-1}` where
    the two coincide, written as :math:`\lambda_j^{p-1}\,\mathrm{expm1}(p\delta)/\mathrm{expm1}(\delta)` with
    :math:`\delta = \log\lambda_i - \log\lambda_j` so that close eigenvalues lose no precision.
    """
    log_lam = jnp.log(eigenvalues)
    delta = log_lam[..., :, None] - log_lam[..., None, :]
    near = jnp.abs(delta) < 1e-6
    safe = jnp.where(near, 1.0, delta)
    ratio = jnp.where(near, power * (1.0 + 0.5 * (power - 1.0) * delta), jnp.expm1(power * safe) / jnp.expm1(safe))
    return ratio * jnp.exp((power - 1.0) * log_lam[..., None, :])


@jax.custom_jvp
def psd_power(matrix, power):
    r""":math:`X^p` of a symmetric positive-definite matrix (batched over leading axes), by eigendecomposition.

    The derivative is the Daleckii–Krein formula :math:`dX^p = V (G \circ V' dX V) V'` with the divided
    differences :math:`G` of :math:`\lambda^p`; unlike differentiating ``eigh`` itself it stays finite when
    eigenvalues coincide (e.g. at a multiple of the identity).
    """
    eigenvalues, vectors = jnp.linalg.eigh(_symmetrize(matrix))
    return (vectors * eigenvalues[..., None, :] ** power) @ jnp.swapaxes(vectors, -1, -2)


@psd_power.defjvp
def _psd_power_jvp(primals, tangents):
    matrix, power = primals
    dmatrix, dpower = tangents
    eigenvalues, vectors = jnp.linalg.eigh(_symmetrize(matrix))
    vt = jnp.swapaxes(vectors, -1, -2)
    powered = eigenvalues**power
    out = (vectors * powered[..., None, :]) @ vt
    inner = vt @ _symmetrize(dmatrix) @ vectors
    dout = vectors @ (_power_divided_differences(eigenvalues, power) * inner) @ vt
    # d X^p / dp = V diag(lambda^p log lambda) V'
    dout = dout + (vectors * (powered * jnp.log(eigenvalues) * dpower[..., None])[..., None, :]) @ vt
    return out, dout


def logdet_from_cholesky(chol):
    """``log|X|`` from the lower Cholesky factor of ``X``."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def scale_inverse(precision_prev, nu, d, chol_a, logdet_prev=None):
    r"""Inverse Wishart scale :math:`S^{-1}_{t-1} = \nu L'^{-1}\Omega_{t-1}^{-d} L^{-1}` and :math:`\log|S_{t-1}|`.

    ``precision_prev`` may carry leading batch axes (particles); ``logdet_prev`` is
    :math:`\log|\Omega_{t-1}|` when the caller already has it.
    """
    k = chol_a.shape[-1]
    neg_power = psd_power(precision_prev, -d)
    eye = jnp.eye(k, dtype=chol_a.dtype)
    chol_a_inv = solve_triangular(chol_a, eye, lower=True)
    s_inv = nu * jnp.swapaxes(chol_a_inv, -1, -2) @ neg_power @ chol_a_inv
    if logdet_prev is None:
        logdet_prev = jnp.linalg.slogdet(precision_prev)[1]
    logdet_s = logdet_from_cholesky(chol_a) + d * logdet_prev - k * jnp.log(nu)
    return _symmetrize(s_inv), logdet_s


def scale_matrix(precision_prev, nu, d, chol_a):
    r"""Wishart scale :math:`S_{t-1} = \nu^{-1} L\,\Omega_{t-1}^{d} L'` (lower Cholesky factor :math:`L` of A)."""
    return _symmetrize(chol_a @ psd_power(precision_prev, d) @ jnp.swapaxes(chol_a, -1, -2) / nu)


def steady_state(chol_a, d, num_iterations: int = 100):
    r"""Fixed point :math:`\bar\Omega = L\,\bar\Omega^{d} L'` of the conditional-mean map.

    The map is a contraction with factor :math:`d` in Thompson's metric (matrix powers with exponent in
    (0, 1) are operator monotone), so the fixed point is unique. The iteration starts from
    :math:`A^{1/(1-d)}`, the exact fixed point when :math:`L` is replaced by the symmetric square root, and
    runs a fixed number of steps so that it is differentiable.
    """
    a = chol_a @ jnp.swapaxes(chol_a, -1, -2)
    start = psd_power(a, 1.0 / (1.0 - d))

    def step(_, omega):
        return _symmetrize(chol_a @ psd_power(omega, d) @ jnp.swapaxes(chol_a, -1, -2))

    return lax.fori_loop(0, num_iterations, step, start)


def wishart_log_normalizer(df, precision_of_scale):
    r"""Log of :math:`\int |\Omega|^{(m-k-1)/2} \exp\{-\mathrm{tr}(M\Omega)/2\}\,d\Omega
    = \tfrac{mk}{2}\log 2 - \tfrac{m}{2}\log|M| + \log\Gamma_k(m/2)`, with ``df`` = m and ``M``."""
    k = precision_of_scale.shape[-1]
    logdet_m = jnp.linalg.slogdet(precision_of_scale)[1]
    return 0.5 * df * k * LOG_2 - 0.5 * df * logdet_m + multigammaln(0.5 * df, k)


def wishart_logpdf(precision, df, scale_inv, logdet_scale):
    r"""Log density of :math:`W_k(m, S)` at :math:`\Omega`, given :math:`S^{-1}` and :math:`\log|S|`."""
    k = precision.shape[-1]
    logdet = jnp.linalg.slogdet(precision)[1]
    trace = jnp.sum(scale_inv * precision, axis=(-2, -1))
    return (0.5 * (df - k - 1.0) * logdet - 0.5 * trace - 0.5 * df * k * LOG_2 - 0.5 * df * logdet_scale
            - multigammaln(0.5 * df, k))


def gaussian_precision_logpdf(y, precision):
    r""":math:`\log N(y; 0, \Omega^{-1}) = -\tfrac{k}{2}\log 2\pi + \tfrac12\log|\Omega| - \tfrac12 y'\Omega y`."""
    k = precision.shape[-1]
    logdet = jnp.linalg.slogdet(precision)[1]
    quad = jnp.einsum("...i,...ij,...j->...", y, precision, y)
    return -0.5 * k * LOG_2PI + 0.5 * logdet - 0.5 * quad
