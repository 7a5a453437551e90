r"""Matrix helpers for the Wishart stochastic-volatility model (Philipov & Glickman 2006).

The Wishart law itself is NumPyro's `numpyro.distributions.Wishart` (``concentration`` = degrees
of freedom $\nu$, ``scale_matrix`` = $S$, density
$|\Omega|^{(\nu-k-1)/2} e^{-\operatorname{tr}(S^{-1}\Omega)/2} / (2^{\nu k/2} |S|^{\nu/2}
\Gamma_k(\nu/2))$, the same convention as ``scipy.stats.wishart(df, scale)``). This module adds what the
model and its efficient-importance-sampling (EIS) likelihood need on top:

* [`matrix_power_psd`][bayesvol.distributions.matrix_power_psd] — $M^p$ of a symmetric positive (semi)definite matrix,
with a derivative
  that stays finite when eigenvalues coincide;
* [`wishart_sv_scale`][bayesvol.distributions.wishart_sv_scale] — the transition scale
$S_{t-1} = \frac{1}{\nu} A^{1/2}\Omega_{t-1}^d
  A^{1/2\prime}$ (and `wishart_sv_scale_from_root`, the one place it and its inverse are computed);
* `gaussian_precision_log_prob` and `GaussianPrecision` — the emission law
  $N_k(0, \Omega^{-1})$ given the precision;
* [`wishart_kernel_log_integral`][bayesvol.distributions.wishart_kernel_log_integral] and
[`wishart_kernel_product`][bayesvol.distributions.wishart_kernel_product] — the integrating constant and
  the normalised law of a Wishart density times a Wishart kernel
  $|\Omega|^{c_1/2}\exp\{-\operatorname{tr}(C_2\Omega)/2\}$, the closed forms behind the EIS
  sampler (normal–Wishart conjugacy).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.ad_checkpoint import checkpoint_name
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import multigammaln
from numpyro.distributions import Wishart, constraints
from numpyro.distributions.util import cholesky_of_inverse

from bayesvol.distributions._constants import LOG_2PI

__all__ = [
    "GaussianPrecision",
    "gaussian_precision_log_prob",
    "matrix_power_psd",
    "wishart_kernel_log_integral",
    "wishart_kernel_product",
    "wishart_sv_root",
    "wishart_sv_scale",
    "wishart_sv_scale_from_root",
]

# Name of the eigen-system computed by matrix_power_psd, for checkpoint policies (jax.checkpoint_policies).
EIGH_CHECKPOINT_NAME = "matrix_power_eigh"


def _transpose(matrix):
    return jnp.swapaxes(matrix, -1, -2)


def _symmetric_eigh(matrix):
    eigenvalues, eigenvectors = jnp.linalg.eigh(0.5 * (matrix + _transpose(matrix)))
    # Named so that a rematerialising caller (jax.checkpoint with a policy saving these names) can keep the
    # eigen-system from the forward pass instead of recomputing it in the backward pass.
    eigenvalues, eigenvectors = checkpoint_name((eigenvalues, eigenvectors), EIGH_CHECKPOINT_NAME)
    # Round-off can leave tiny negative eigenvalues on a singular PSD matrix; a real power needs >= 0.
    return jnp.maximum(eigenvalues, 0.0), eigenvectors


def _reassemble(eigenvectors, diagonal_or_matrix, *, is_matrix=False):
    inner = diagonal_or_matrix if is_matrix else diagonal_or_matrix[..., None, :] * jnp.eye(eigenvectors.shape[-1])
    return eigenvectors @ inner @ _transpose(eigenvectors)


def _power_divided_differences(eigenvalues, power):
    r"""Matrix of $(\lambda_i^p - \lambda_j^p)/(\lambda_i - \lambda_j)$, $p \lambda_i^{p-1}$ on ties.

    Well-separated pairs (ratio above 2) use the quotient directly, which then loses at most a digit.
    Close pairs use $(\lambda_i\lambda_j)^{(p-1)/2}\sinh(p r/2)/\sinh(r/2)$ with
    $r = \log(\lambda_i/\lambda_j)$, exact algebra that has no cancellation and tends to
    $p\lambda^{p-1}$ as the pair merges.
    """
    p = power[..., None, None]
    lam_i, lam_j = eigenvalues[..., :, None], eigenvalues[..., None, :]
    gap = lam_i - lam_j
    larger = jnp.maximum(lam_i, lam_j)
    separated = jnp.abs(gap) > 0.5 * larger
    safe_gap = jnp.where(separated, gap, 1.0)
    quotient = (lam_i**p - lam_j**p) / safe_gap
    # Close pairs are both positive (a pair with a zero member is separated unless both are zero).
    both_positive = (lam_i > 0) & (lam_j > 0)
    safe_i = jnp.where(both_positive, lam_i, 1.0)
    safe_j = jnp.where(both_positive, lam_j, 1.0)
    log_ratio = jnp.log(safe_i) - jnp.log(safe_j)
    tied = log_ratio == 0.0
    safe_log_ratio = jnp.where(tied, 1.0, log_ratio)
    sinh_ratio = jnp.where(tied, p, jnp.sinh(0.5 * p * safe_log_ratio) / jnp.sinh(0.5 * safe_log_ratio))
    close = jnp.exp(0.5 * (p - 1.0) * (jnp.log(safe_i) + jnp.log(safe_j))) * sinh_ratio
    # Two zero eigenvalues: the derivative of x^p at 0 (infinite for p < 1, documented).
    at_zero = jnp.where(p == 1.0, 1.0, jnp.where(p > 1.0, 0.0, jnp.inf))
    return jnp.where(separated, quotient, jnp.where(both_positive, close, at_zero))


@jax.custom_jvp
def _matrix_power(matrix, power):
    eigenvalues, eigenvectors = _symmetric_eigh(matrix)
    return _reassemble(eigenvectors, eigenvalues ** power[..., None])


@_matrix_power.defjvp
def _matrix_power_jvp(primals, tangents):
    matrix, power = primals
    matrix_dot, power_dot = tangents
    eigenvalues, eigenvectors = _symmetric_eigh(matrix)
    powered = eigenvalues ** power[..., None]
    value = _reassemble(eigenvectors, powered)
    # Daleckii-Krein: d f(M)[E] = V (F o (V' E V)) V' with F the divided differences of f on the spectrum;
    # unlike differentiating eigh, this stays finite when eigenvalues are repeated.
    rotated = _transpose(eigenvectors) @ (0.5 * (matrix_dot + _transpose(matrix_dot))) @ eigenvectors
    matrix_term = _reassemble(eigenvectors, _power_divided_differences(eigenvalues, power) * rotated, is_matrix=True)
    positive = eigenvalues > 0
    log_eigenvalues = jnp.log(jnp.where(positive, eigenvalues, 1.0))
    power_derivative = jnp.where(positive, powered * log_eigenvalues, 0.0)  # d/dp x^p = x^p log x -> 0 at x = 0
    power_term = _reassemble(eigenvectors, power_derivative) * power_dot[..., None, None]
    return value, matrix_term + power_term


def matrix_power_psd(matrix, power):
    r"""Real power $M^p$ of a symmetric positive semidefinite matrix by eigendecomposition.

    Parameters
    ----------
    matrix : array_like, shape (..., k, k)
        Symmetric positive semidefinite matrices (only the symmetric part is used).
    power : array_like, shape broadcastable to ``matrix.shape[:-2]``
        Exponent $p$. Negative powers need a positive definite matrix.

    Returns
    -------
    jax.Array, shape (..., k, k)
        $V \operatorname{diag}(\lambda_i^p) V'$ where $M = V\operatorname{diag}(\lambda_i)V'$;
        ``power = 0.5`` is the symmetric square root.

    Notes
    -----
    Eigenvalues that round-off makes slightly negative are set to zero. The derivative in ``matrix``
    uses the Daleckii–Krein formula

    $$
    \mathrm{d}(M^p)[E] = V\left(F \circ (V' E V)\right)V', \qquad
    F_{ij} = \frac{\lambda_i^p - \lambda_j^p}{\lambda_i - \lambda_j}, \quad
    F_{ii} = p\,\lambda_i^{p-1},
    $$

    evaluated without cancellation, so it is finite and correct at repeated eigenvalues (the identity,
    diagonal matrices), where differentiating ``eigh`` itself gives NaN. The derivative in ``power`` is
    $V\operatorname{diag}(\lambda_i^p\log\lambda_i)V'$. Both need a positive definite matrix when
    $p < 1$ (at a zero eigenvalue $x^p$ has an infinite slope). Second derivatives
    differentiate through ``eigh`` and inherit its trouble with repeated eigenvalues.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayesvol.distributions import matrix_power_psd
    >>> a = jnp.array([[4.0, 0.0], [0.0, 9.0]])
    >>> matrix_power_psd(a, 0.5).tolist()
    [[2.0, 0.0], [0.0, 3.0]]
    """
    matrix = jnp.asarray(matrix, dtype=float)
    power = jnp.broadcast_to(jnp.asarray(power, dtype=float), matrix.shape[:-2])
    return _matrix_power(matrix, power)


def wishart_sv_root(A, root: Literal["symmetric", "cholesky"] = "symmetric"):
    r"""The square root $A^{1/2}$ ($A = A^{1/2}A^{1/2\prime}$) in the transition scale.

    ``root="symmetric"``: the symmetric root ([`matrix_power_psd`][bayesvol.distributions.matrix_power_psd] with power
    1/2); ``root="cholesky"``: the lower Cholesky factor. See
    [`wishart_sv_scale`][bayesvol.distributions.wishart_sv_scale] for the difference.
    """
    A = jnp.asarray(A, dtype=float)
    if root == "symmetric":
        return matrix_power_psd(A, 0.5)
    if root == "cholesky":
        return jnp.linalg.cholesky(A)
    raise ValueError(f"root must be 'symmetric' or 'cholesky', got {root!r}")


def wishart_sv_scale_from_root(a_root, omega_prev, d, nu, *, inverse: bool = False, lower: bool = False,
                               logdet_prev=None):
    r"""The Wishart SV transition scale $S_{t-1} = \nu^{-1} R\,\Omega_{t-1}^{d} R'$, or its inverse.

    The one implementation of the scale recursion: [`wishart_sv_scale`][bayesvol.distributions.wishart_sv_scale], the
    model's ``transition`` (hence ``initial``, the simulator and the NumPyro program), its steady state and its
    forecasts, and the EIS sampler and particle filter all call it.

    Parameters
    ----------
    a_root : array_like, shape (..., k, k)
        A square root $R$ of $A$ ($A = RR'$), e.g. from `wishart_sv_root`.
    omega_prev : array_like, shape (..., k, k)
        Previous precision matrix $\Omega_{t-1}$ (symmetric positive definite).
    d, nu : array_like
        Persistence exponent and degrees of freedom (broadcast against the batch axes).
    inverse : bool
        Return $S_{t-1}^{-1}$ and $\log|S_{t-1}|$ instead of $S_{t-1}$.
    lower : bool
        ``a_root`` is lower triangular (a Cholesky factor): its inverse comes from a triangular solve and its
        log-determinant from its diagonal. Only used with ``inverse=True``.
    logdet_prev : array_like, optional
        $\log|\Omega_{t-1}|$ when the caller already has it (``inverse=True`` only).

    Returns
    -------
    jax.Array or (jax.Array, jax.Array)
        $S_{t-1}$, shape (..., k, k); with ``inverse=True`` the pair $(S_{t-1}^{-1}, \log|S_{t-1}|)$.

    Notes
    -----
    The inverse is the product of the same factors inverted in reverse order,
    $S_{t-1}^{-1} = \nu\,R'^{-1}\,\Omega_{t-1}^{-d}\,R^{-1}$, with
    $\log|S_{t-1}| = \log|RR'| + d\log|\Omega_{t-1}| - k\log\nu$; no k x k inverse of $S_{t-1}$
    is formed. Both results are symmetrised.
    """
    a_root = jnp.asarray(a_root, dtype=float)
    omega_prev = jnp.asarray(omega_prev, dtype=float)
    nu = jnp.asarray(nu, dtype=float)
    batch = jnp.broadcast_shapes(a_root.shape[:-2], omega_prev.shape[:-2], jnp.shape(d), jnp.shape(nu))
    omega_prev = jnp.broadcast_to(omega_prev, batch + omega_prev.shape[-2:])
    if not inverse:
        scale = a_root @ matrix_power_psd(omega_prev, d) @ _transpose(a_root) / nu[..., None, None]
        return 0.5 * (scale + _transpose(scale))
    k = a_root.shape[-1]
    if lower:
        root_inv = solve_triangular(a_root, jnp.broadcast_to(jnp.eye(k, dtype=a_root.dtype), a_root.shape),
                                    lower=True)
        logdet_root = 2.0 * jnp.sum(jnp.log(jnp.diagonal(a_root, axis1=-2, axis2=-1)), axis=-1)
    else:
        root_inv = jnp.linalg.inv(a_root)
        logdet_root = 2.0 * jnp.linalg.slogdet(a_root)[1]
    s_inv = nu[..., None, None] * _transpose(root_inv) @ matrix_power_psd(omega_prev, -jnp.asarray(d)) @ root_inv
    if logdet_prev is None:
        logdet_prev = jnp.linalg.slogdet(omega_prev)[1]
    logdet_s = logdet_root + d * logdet_prev - k * jnp.log(nu)
    return 0.5 * (s_inv + _transpose(s_inv)), logdet_s


def wishart_sv_scale(A, omega_prev, d, nu, *, root: Literal["symmetric", "cholesky"] = "symmetric"):
    r"""Scale matrix of the Wishart SV transition, $S_{t-1} = \frac{1}{\nu} A^{1/2}\Omega_{t-1}^d A^{1/2\prime}$.

    Parameters
    ----------
    A : array_like, shape (..., k, k)
        Symmetric positive definite parameter matrix.
    omega_prev : array_like, shape (..., k, k)
        Previous precision matrix $\Omega_{t-1}$ (symmetric positive definite).
    d : array_like
        Persistence exponent, $0 < d < 1$ in the model.
    nu : array_like
        Degrees of freedom $\nu > k - 1$.
    root : {"symmetric", "cholesky"}
        Which square root of $A$ to use (see Notes). [`bayesvol.models.WishartSV`][bayesvol.models.WishartSV] uses
        ``"cholesky"``, the factorisation named in seed 003 (eq. 3).

    Returns
    -------
    jax.Array, shape (..., k, k)
        $S_{t-1}$, so that $\Omega_t \mid \Omega_{t-1} \sim W_k(\nu, S_{t-1})$ and
        $E[\Omega_t \mid \Omega_{t-1}] = A^{1/2}\Omega_{t-1}^d A^{1/2\prime}$.

    Notes
    -----
    With ``root="symmetric"`` $A^{1/2}$ is the symmetric square root
    ([`matrix_power_psd`][bayesvol.distributions.matrix_power_psd] with power 1/2), so $A^{1/2\prime} = A^{1/2}$. The
    Cholesky factor $L$ (``root="cholesky"``, the factorisation $A = LL'$ named in the seed's description of Philipov
    and Glickman) gives a different model: $L = A^{1/2}Q$ for an orthogonal $Q$, and
    $L\Omega^d L' = A^{1/2}(Q\Omega^d Q')A^{1/2}$ equals the symmetric version only when $Q$
    commutes with $\Omega^d$. The symmetric root makes the model equivariant to reordering the
    assets (permuting rows and columns of $A$ and $\Omega_{t-1}$ permutes $S_{t-1}$
    alike); the Cholesky root depends on the order. Both give $S = A/\nu$ when $d = 0$.
    The computation is `wishart_sv_scale_from_root` with `wishart_sv_root`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayesvol.distributions import wishart_sv_scale
    >>> A = jnp.array([[0.5, 0.1], [0.1, 0.4]])
    >>> S = wishart_sv_scale(A, jnp.eye(2) * 3.0, d=0.0, nu=10.0)
    >>> bool(jnp.allclose(S, A / 10.0))
    True
    """
    return wishart_sv_scale_from_root(wishart_sv_root(A, root), omega_prev, d, nu)


def gaussian_precision_log_prob(y, *, precision_tril=None, covariance_tril=None, precision=None,
                                logdet_precision=None):
    r"""Log density of $N_k(0, \Omega^{-1})$ at ``y``: $-\tfrac{k}{2}\log 2\pi + \tfrac12\log|\Omega|
    - \tfrac12 y'\Omega y$.

    The one emission density of the Wishart SV model (its ``emission``, NumPyro program, pointwise
    log-likelihood of posterior draws and EIS weights). Give exactly one description of $\Omega$:

    * ``precision_tril``: lower Cholesky factor $F$ of $\Omega = FF'$ (quadratic form
      $\|F'y\|^2$);
    * ``covariance_tril``: lower Cholesky factor $L$ of $\Omega^{-1} = LL'$ (quadratic form
      $\|L^{-1}y\|^2$);
    * ``precision`` with ``logdet_precision`` ($\log|\Omega|$, when the caller has it without a
      factorisation, as the EIS draws do).

    ``y`` (..., k) broadcasts against the batch axes of $\Omega$: one observation over many precisions.
    """
    given = [precision_tril is not None, covariance_tril is not None, precision is not None]
    if sum(given) != 1 or (precision is not None) != (logdet_precision is not None):
        raise ValueError("give exactly one of precision_tril, covariance_tril or precision with logdet_precision")
    y = jnp.asarray(y)
    k = y.shape[-1]
    if precision_tril is not None:
        projected = jnp.einsum("...ji,...j->...i", precision_tril, y)
        quadratic = jnp.sum(projected**2, axis=-1)
        logdet_precision = 2.0 * jnp.sum(jnp.log(jnp.diagonal(precision_tril, axis1=-2, axis2=-1)), axis=-1)
    elif covariance_tril is not None:
        y_col = jnp.broadcast_to(y[..., None], covariance_tril.shape[:-1] + (1,))
        whitened = solve_triangular(covariance_tril, y_col, lower=True)[..., 0]
        quadratic = jnp.sum(whitened**2, axis=-1)
        logdet_precision = -2.0 * jnp.sum(jnp.log(jnp.diagonal(covariance_tril, axis1=-2, axis2=-1)), axis=-1)
    else:
        quadratic = jnp.einsum("...i,...ij,...j->...", y, precision, y)
    return -0.5 * k * LOG_2PI + 0.5 * logdet_precision - 0.5 * quadratic


class GaussianPrecision(dist.Distribution):
    r"""Zero-mean $N_k(0, \Omega^{-1})$ given its precision $\Omega$ (batched over leading axes).

    ``log_prob`` is `gaussian_precision_log_prob` from the Cholesky factor of $\Omega$ (no
    inverse), and it broadcasts a single ``y`` over a batch of precisions, which the particle filter needs.
    """

    arg_constraints = {"precision": constraints.positive_definite}
    support = constraints.real_vector
    reparametrized_params = ["precision"]

    def __init__(self, precision, *, validate_args=None):
        self.precision = precision
        self._chol = jnp.linalg.cholesky(precision)
        super().__init__(batch_shape=precision.shape[:-2], event_shape=precision.shape[-1:],
                         validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.batch_shape + self.event_shape
        noise = jax.random.normal(key, shape, dtype=self.precision.dtype)
        # y = L'^{-1} z has covariance (L L')^{-1} = Omega^{-1}.
        chol_t = jnp.broadcast_to(jnp.swapaxes(self._chol, -1, -2), shape + shape[-1:])
        return solve_triangular(chol_t, noise[..., None], lower=False)[..., 0]

    def log_prob(self, value):
        return gaussian_precision_log_prob(value, precision_tril=self._chol)


def _kernel_pieces(df, scale_matrix, c1, c2_matrix):
    df = jnp.asarray(df, dtype=float)
    c1 = jnp.asarray(c1, dtype=float)
    scale_matrix = jnp.asarray(scale_matrix, dtype=float)
    c2_matrix = jnp.asarray(c2_matrix, dtype=float)
    k = scale_matrix.shape[-1]
    scale_tril = jnp.linalg.cholesky(scale_matrix)
    # S^{-1} + C2 = L^{-T} (I + L' C2 L) L^{-1}: work with the middle factor, which needs no inverse of S.
    middle = jnp.eye(k) + _transpose(scale_tril) @ c2_matrix @ scale_tril
    middle = 0.5 * (middle + _transpose(middle))
    posterior_df = df + c1
    # Find out whether the integral converges before factorising for real, so that a diverging case is
    # replaced by a harmless one and its NaNs cannot reach gradients through the final where.
    trial = jnp.linalg.cholesky(jax.lax.stop_gradient(middle))
    converges = jnp.all(jnp.isfinite(trial), axis=(-2, -1)) & (posterior_df > k - 1)
    safe_middle = jnp.where(converges[..., None, None], middle, jnp.eye(k))
    safe_posterior_df = jnp.where(converges, posterior_df, float(k))
    return df, c1, scale_tril, safe_middle, safe_posterior_df, converges, k


def wishart_kernel_log_integral(df, scale_matrix, c1, c2_matrix):
    r"""Log of $\int W_k(\Omega;\nu,S)\,|\Omega|^{c_1/2}\exp\{-\tfrac12\operatorname{tr}(C_2\Omega)\}\,d\Omega$.

    Parameters
    ----------
    df : array_like
        Wishart degrees of freedom $\nu > k-1$.
    scale_matrix : array_like, shape (..., k, k)
        Wishart scale $S$ (positive definite).
    c1 : array_like
        Kernel exponent $c_1$ (any real with $\nu + c_1 > k - 1$).
    c2_matrix : array_like, shape (..., k, k)
        Symmetric kernel matrix $C_2$ (need not be definite; $S^{-1} + C_2$ must be).

    Returns
    -------
    jax.Array
        The log integral, ``+inf`` where it diverges ($\nu + c_1 \le k-1$ or
        $S^{-1} + C_2$ not positive definite).

    Notes
    -----
    The product of the Wishart density and the kernel is an unnormalised
    $W_k(\nu + c_1, (S^{-1} + C_2)^{-1})$ density, hence (integrating over the
    $k(k+1)/2$ free elements of $\Omega$, the measure the Wishart density refers to)

    $$
    \log\chi = \frac{c_1 k}{2}\log 2 + \log\Gamma_k\!\left(\frac{\nu+c_1}{2}\right)
    - \log\Gamma_k\!\left(\frac{\nu}{2}\right) + \frac{c_1}{2}\log|S|
    - \frac{\nu+c_1}{2}\log\left|I + L' C_2 L\right|,
    $$

    with $S = LL'$ and $\Gamma_k$ the multivariate gamma function; the last term is
    $-\frac{\nu+c_1}{2}\log|S^{-1}+C_2| - \frac{\nu+c_1}{2}\log|S|$ rearranged so that no inverse
    of $S$ is formed. In the EIS recursion for the Wishart SV model (seed 003, §2) the EIS kernel
    $\zeta(\Omega_t) = |\Omega_t|^{c_{1,t}/2}\exp\{-\operatorname{tr}(C_{2,t}\Omega_t)/2\}$ is
    combined with the observation density
    $N(y_t; 0, \Omega_t^{-1}) = (2\pi)^{-k/2}|\Omega_t|^{1/2}\exp\{-\tfrac12 y_t'\Omega_t y_t\}$,
    itself a Wishart kernel with $c_1 = 1$, $C_2 = y_t y_t'$, and with the transition
    $W_k(\nu, S_{t-1})$. Adding the exponents and matrices gives the total kernel; this function
    is its integrating constant $\chi_t(\Omega_{t-1})$, which the EIS regression of the previous
    period needs, and [`wishart_kernel_product`][bayesvol.distributions.wishart_kernel_product] is the matching sampler.

    Examples
    --------
    The marginal density of $y$ when $\Omega \sim W_k(\nu, S)$ and
    $y \mid \Omega \sim N(0, \Omega^{-1})$ (a multivariate t):

    >>> import jax.numpy as jnp
    >>> from bayesvol.distributions import wishart_kernel_log_integral
    >>> y = jnp.array([0.3, -1.2])
    >>> log_marginal = -jnp.log(2 * jnp.pi) + wishart_kernel_log_integral(6.0, jnp.eye(2), 1.0, jnp.outer(y, y))
    >>> round(float(log_marginal), 6)
    -3.477207
    """
    df, c1, scale_tril, middle, posterior_df, converges, k = _kernel_pieces(df, scale_matrix, c1, c2_matrix)
    log_det_scale = 2.0 * jnp.sum(jnp.log(jnp.diagonal(scale_tril, axis1=-2, axis2=-1)), axis=-1)
    middle_tril = jnp.linalg.cholesky(middle)
    log_det_middle = 2.0 * jnp.sum(jnp.log(jnp.diagonal(middle_tril, axis1=-2, axis2=-1)), axis=-1)
    value = (
        0.5 * c1 * k * jnp.log(2.0)
        + multigammaln(0.5 * posterior_df, k)
        - multigammaln(0.5 * df, k)
        + 0.5 * c1 * log_det_scale
        - 0.5 * posterior_df * log_det_middle
    )
    return jnp.where(converges, value, jnp.inf)


def wishart_kernel_product(df, scale_matrix, c1, c2_matrix, *, validate_args=None):
    r"""Normalised Wishart density times a Wishart kernel: $W_k(\nu + c_1, (S^{-1} + C_2)^{-1})$.

    Parameters
    ----------
    df, scale_matrix, c1, c2_matrix
        As in [`wishart_kernel_log_integral`][bayesvol.distributions.wishart_kernel_log_integral].
    validate_args : bool, optional
        Passed to `numpyro.distributions.Wishart`.

    Returns
    -------
    numpyro.distributions.Wishart
        The law proportional to $W_k(\Omega;\nu,S)\,|\Omega|^{c_1/2}\exp\{-\operatorname{tr}(C_2\Omega)/2\}$
        — with the observation kernel included, the EIS sampler of the Wishart SV model, and with
        $c_1 = 1, C_2 = yy'$ alone, the conjugate posterior of $\Omega$ given one
        $y \sim N(0, \Omega^{-1})$.

    Notes
    -----
    The scale's Cholesky factor is $L K$ with $S = LL'$ and $KK' = (I + L'C_2L)^{-1}$,
    which avoids inverting $S$. Where the integral diverges (see
    [`wishart_kernel_log_integral`][bayesvol.distributions.wishart_kernel_log_integral]) the returned parameters are
    placeholders; check that function's value first.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayesvol.distributions import wishart_kernel_product
    >>> y = jnp.array([0.3, -1.2])
    >>> posterior = wishart_kernel_product(6.0, jnp.eye(2), 1.0, jnp.outer(y, y))
    >>> float(posterior.concentration)
    7.0
    """
    _, _, scale_tril, middle, posterior_df, _, _ = _kernel_pieces(df, scale_matrix, c1, c2_matrix)
    return Wishart(posterior_df, scale_tril=scale_tril @ cholesky_of_inverse(middle), validate_args=validate_args)
