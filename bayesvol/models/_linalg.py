"""Small dense linear algebra on the last two axes: the one set of Cholesky factorisations, triangular and
Cholesky solves and small products of the package (the DFSV recursions, the Bellman filters, EIS, the Newton
steps of the filters).

The matrices are small (a factor or a state dimension), so the Cholesky factorisations, triangular solves and
products are written out entry by entry: inside ``lax.scan`` XLA fuses them with their neighbours, which on CPU
is several times faster than calling LAPACK for tiny matrices (for a ``1 x 1`` matrix the factor is the square
root). Above `SMALL` the LAPACK routines are used. Every function accepts leading batch axes (one Kalman
update for all particles of a particle filter at once). A negative pivot (a matrix that is not positive
semi-definite) gives NaN entries, so ``jnp.all(jnp.isfinite(cholesky(a)))`` tests for one.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["SMALL", "cho_solve", "cholesky", "logdet_from_cholesky", "mT", "mm", "mv", "solve_lower", "solve_upper"]

# Above this size the written-out factorisations grow too long; LAPACK is used instead.
SMALL = 8


def cholesky(a):
    """Lower Cholesky factor of the symmetric positive-definite matrices ``a`` (..., K, K)."""
    k = a.shape[-1]
    if k > SMALL:
        return jnp.linalg.cholesky(a)
    low = [[None] * k for _ in range(k)]
    for j in range(k):
        diag = jnp.sqrt(a[..., j, j] - sum(low[j][p] ** 2 for p in range(j)))
        low[j][j] = diag
        for i in range(j + 1, k):
            low[i][j] = (a[..., i, j] - sum(low[i][p] * low[j][p] for p in range(j))) / diag
    zero = jnp.zeros_like(a[..., 0, 0])
    return jnp.stack([jnp.stack([low[i][j] if j <= i else zero for j in range(k)], -1) for i in range(k)], -2)


def solve_lower(low, b, vector: bool | None = None):
    """Solve ``low x = b`` for lower-triangular ``low`` (..., K, K); ``b`` is (..., K) or (..., K, M).

    ``vector`` says which (by default: a vector when ``b`` has one axis fewer than ``low``).
    """
    k = low.shape[-1]
    vector = b.ndim == low.ndim - 1 if vector is None else vector
    if k > SMALL:
        from jax.scipy.linalg import solve_triangular

        rhs = b[..., None] if vector else b
        out = solve_triangular(low, rhs, lower=True)
        return out[..., 0] if vector else out
    rows = []
    for i in range(k):
        acc = b[..., i] if vector else b[..., i, :]
        for p in range(i):
            coef = low[..., i, p] if vector else low[..., i, p, None]
            acc = acc - coef * rows[p]
        rows.append(acc / (low[..., i, i] if vector else low[..., i, i, None]))
    return jnp.stack(rows, -1 if vector else -2)


def solve_upper(low, b, vector: bool | None = None):
    """Solve ``low' x = b`` for lower-triangular ``low`` (..., K, K); ``b`` is (..., K) or (..., K, M).

    ``vector`` says which (by default: a vector when ``b`` has one axis fewer than ``low``).
    """
    k = low.shape[-1]
    vector = b.ndim == low.ndim - 1 if vector is None else vector
    if k > SMALL:
        from jax.scipy.linalg import solve_triangular

        rhs = b[..., None] if vector else b
        out = solve_triangular(low, rhs, lower=True, trans=1)
        return out[..., 0] if vector else out
    rows = [None] * k
    for i in reversed(range(k)):
        acc = b[..., i] if vector else b[..., i, :]
        for p in range(i + 1, k):
            acc = acc - (low[..., p, i] if vector else low[..., p, i, None]) * rows[p]
        rows[i] = acc / (low[..., i, i] if vector else low[..., i, i, None])
    return jnp.stack(rows, -1 if vector else -2)


def cho_solve(chol, b):
    """Solve ``(L L') x = b`` given the lower Cholesky factor ``L``."""
    return solve_upper(chol, solve_lower(chol, b))


def logdet_from_cholesky(chol):
    """``log|X|`` from the lower Cholesky factor of ``X`` (..., K, K)."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def mv(a, x):
    """Matrix-vector product; for small sizes as a broadcast sum, which XLA fuses with its neighbours."""
    if a.shape[-1] > SMALL:
        return jnp.einsum("...ij,...j->...i", a, x)
    return jnp.sum(a * x[..., None, :], -1)


def mm(a, b):
    """Matrix product on the last two axes; for small sizes as a broadcast sum (fused by XLA)."""
    if a.shape[-1] > SMALL:
        return a @ b
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], -2)


def mT(a):
    """Swap the last two axes (transpose of a batch of matrices)."""
    return jnp.swapaxes(a, -1, -2)
