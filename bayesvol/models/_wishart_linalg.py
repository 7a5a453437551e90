r"""Matrix algebra of the Wishart SV model in the model's own convention, shared by the model and its filters.

Conventions: $A = L L'$ with $L$ the lower Cholesky factor (the square root in the model's
equation $S_{t-1} = \nu^{-1} A^{1/2}\,\Omega_{t-1}^{d}\,A^{1/2\prime}$, as in seed 003), matrix powers of
symmetric positive-definite matrices by eigendecomposition
([`bayesvol.distributions.matrix_power_psd`][bayesvol.distributions.matrix_power_psd], whose derivative stays finite at
repeated eigenvalues). The scale itself is computed in one place,
`bayesvol.distributions.wishart.wishart_sv_scale_from_root`; this module binds it to the Cholesky root.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from bayesvol.distributions.wishart import matrix_power_psd, wishart_sv_scale_from_root


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


def steady_state(chol_a, d, num_iterations: int = 100):
    r"""Fixed point $\bar\Omega = L\,\bar\Omega^{d} L'$ of the conditional-mean map ($\nu S$).

    The map is a contraction with factor $d$ in Thompson's part metric ($X \mapsto X^d$ is
    operator monotone and homogeneous of degree $d$, congruence is an isometry), so the fixed point
    is unique. The iteration starts from $A^{1/(1-d)}$, the exact fixed point when $L$ is
    replaced by the symmetric square root, and runs a fixed number of steps so that it is differentiable.
    """
    a = chol_a @ jnp.swapaxes(chol_a, -1, -2)
    start = matrix_power_psd(a, 1.0 / (1.0 - d))
    # The conditional mean L Omega^d L' is the scale with nu = 1.
    return lax.fori_loop(0, num_iterations, lambda _, omega: scale_matrix(omega, 1.0, d, chol_a), start)
