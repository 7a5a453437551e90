"""Constraints, bijections and prior laws for the matrix parameters of [`DFSV`][bayesvol.models.DFSV].

Three parameters of the dynamic factor SV model are matrices with structure that no scalar prior can
express: the identified loadings ``lambda_r``, the stationary VAR(1) matrices ``Phi_f`` and ``Phi_h``, and
the covariance ``Q_h``. Each gets here a constraint (its *support*), a bijection from an unconstrained
space onto it (registered with ``numpyro.distributions.transforms.biject_to``, so maximum likelihood and
NUTS optimise and sample over the same space) and a prior law.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax import lax
from numpyro.distributions import constraints
from numpyro.distributions.transforms import Transform, biject_to

__all__ = [
    "IdentifiedLoadings",
    "LoadingsTransform",
    "ScaledLKJ",
    "StationaryMatrix",
    "StationaryTransform",
    "identified_loadings",
    "solve_discrete_lyapunov",
    "stationary_from_unconstrained",
    "unconstrained_from_stationary",
]


# --- linear algebra ------------------------------------------------------------------------------
def solve_discrete_lyapunov(transition, noise_cov):
    r"""Solve $\Gamma = T \Gamma T' + Q$ for $\Gamma$.

    The stationary covariance of $x_t = T x_{t-1} + e_t$, $e_t \sim N(0, Q)$, from the linear
    system $(I - T \otimes T)\,\mathrm{vec}\,\Gamma = \mathrm{vec}\,Q$ (sizes up to about ten).
    ``noise_cov`` may carry leading batch dimensions; ``transition`` is one matrix.
    """
    transition = jnp.asarray(transition)
    noise_cov = jnp.asarray(noise_cov)
    k = transition.shape[-1]
    system = jnp.eye(k * k) - jnp.kron(transition, transition)
    rhs = noise_cov.reshape((-1, k * k)).T
    gamma = jnp.linalg.solve(system, rhs).T.reshape(noise_cov.shape)
    return 0.5 * (gamma + jnp.swapaxes(gamma, -1, -2))


def stationary_from_unconstrained(free):
    r"""Map any square matrix $A$ to a stationary VAR(1) matrix $\Phi = A C^{-1}$.

    $C$ is the lower Cholesky factor of $I + A A'$. Then $\Gamma = C C'$ solves
    $\Gamma - \Phi \Gamma \Phi' = I$ with $\Gamma \succ 0$, so every eigenvalue of $\Phi$
    lies inside the unit circle; conversely every stationary $\Phi$ is reached by exactly one
    $A = \Phi\,\mathrm{chol}(\Gamma)$. For a scalar this is $\phi = a / \sqrt{1 + a^2}$.
    Smooth everywhere (one Cholesky factorisation and one triangular solve).
    """
    free = jnp.asarray(free)
    k = free.shape[-1]
    chol = jnp.linalg.cholesky(jnp.eye(k) + free @ jnp.swapaxes(free, -1, -2))
    return lax.linalg.triangular_solve(chol, free, left_side=False, lower=True)


def unconstrained_from_stationary(phi):
    """Inverse of `stationary_from_unconstrained`: ``A = Phi chol(Gamma)``, ``Gamma = Phi Gamma Phi' + I``."""
    phi = jnp.asarray(phi)
    k = phi.shape[-1]
    if phi.ndim > 2:
        return jax.vmap(unconstrained_from_stationary)(phi.reshape((-1, k, k))).reshape(phi.shape)
    gamma = solve_discrete_lyapunov(phi, jnp.eye(k))
    return phi @ jnp.linalg.cholesky(gamma)


def free_loading_index(num_assets: int, num_factors: int):
    """Rows and columns of the free (strictly lower-triangular) entries of an identified ``N x K`` loading matrix."""
    return np.nonzero(np.tri(num_assets, num_factors, -1, dtype=bool))


def num_free_loadings(num_assets: int, num_factors: int) -> int:
    """``N K - K (K + 1) / 2``: loadings left free by the identification."""
    return num_assets * num_factors - num_factors * (num_factors + 1) // 2


def loadings_from_free(free, num_assets: int, num_factors: int):
    """Identified loading matrix: free entries below the diagonal, ones on it, zeros above."""
    free = jnp.asarray(free)
    rows, cols = free_loading_index(num_assets, num_factors)
    base = jnp.eye(num_assets, num_factors)
    base = jnp.broadcast_to(base, free.shape[:-1] + base.shape)
    return base.at[..., rows, cols].set(free)


# --- constraints ---------------------------------------------------------------------------------
def _shape_error(label, expected, value):
    return ValueError(f"{label} must be {expected}; got shape {tuple(np.shape(value))}")


class _StationaryMatrix(constraints.Constraint):
    """Square matrices whose eigenvalues all lie strictly inside the unit circle (stationary VAR(1))."""

    event_dim = 2

    def __init__(self, dim: int | None = None, label: str = "a VAR(1) matrix"):
        self.dim, self.label = dim, label

    def __call__(self, x):
        if np.ndim(x) < 2 or np.shape(x)[-1] != np.shape(x)[-2] or (self.dim and np.shape(x)[-1] != self.dim):
            size = f"{self.dim}x{self.dim}" if self.dim else "square"
            raise _shape_error(self.label, f"a {size} matrix", x)
        if isinstance(x, jax.core.Tracer):
            return jnp.all(jnp.abs(jnp.linalg.eigvals(x)) < 1.0, axis=-1)
        values = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            return np.zeros(values.shape[:-2], dtype=bool)
        return np.all(np.abs(np.linalg.eigvals(values)) < 1.0, axis=-1)

    def feasible_like(self, prototype):
        return jnp.zeros_like(prototype)

    def tree_flatten(self):
        return (), ((), {"dim": self.dim, "label": self.label})

    def __repr__(self):
        return "stationary matrix (spectral radius < 1)"


class _IdentifiedLoadings(constraints.Constraint):
    """``N x K`` matrices whose first ``K`` rows are lower-triangular with a unit diagonal."""

    event_dim = 2

    def __init__(self, num_factors: int, label: str = "lambda_r"):
        self.num_factors, self.label = num_factors, label

    def __call__(self, x):
        k = self.num_factors
        if np.ndim(x) < 2 or np.shape(x)[-1] != k or np.shape(x)[-2] < k:
            raise _shape_error(self.label, f"an N x {k} matrix with N >= {k} (one column per factor)", x)
        xp = jnp if isinstance(x, jax.core.Tracer) else np
        x = x if xp is jnp else np.asarray(x, dtype=np.float64)
        top = x[..., :k, :k]
        upper_zero = xp.all(xp.triu(top, 1) == 0, axis=(-2, -1))
        unit_diagonal = xp.all(xp.diagonal(top, axis1=-2, axis2=-1) == 1, axis=-1)
        finite = xp.all(xp.isfinite(x), axis=(-2, -1))
        return upper_zero & unit_diagonal & finite

    def feasible_like(self, prototype):
        return jnp.broadcast_to(jnp.eye(*prototype.shape[-2:]), prototype.shape)

    def tree_flatten(self):
        return (), ((), {"num_factors": self.num_factors, "label": self.label})

    def __repr__(self):
        k = self.num_factors
        return f"identified loadings (N x {k}, first {k} rows lower-triangular with unit diagonal)"


class _CovarianceMatrix(constraints.Constraint):
    """Symmetric positive-definite ``K x K`` matrices, with a shape check that names the parameter."""

    event_dim = 2

    def __init__(self, dim: int | None = None, label: str = "a covariance matrix"):
        self.dim, self.label = dim, label

    def __call__(self, x):
        if np.ndim(x) < 2 or np.shape(x)[-1] != np.shape(x)[-2] or (self.dim and np.shape(x)[-1] != self.dim):
            size = f"{self.dim}x{self.dim}" if self.dim else "square"
            raise _shape_error(self.label, f"a symmetric positive-definite {size} matrix", x)
        if not isinstance(x, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(x, dtype=np.float64))):
            return np.zeros(np.shape(x)[:-2], dtype=bool)
        return constraints.positive_definite(x)

    def feasible_like(self, prototype):
        return jnp.broadcast_to(jnp.eye(prototype.shape[-1]), prototype.shape)

    def tree_flatten(self):
        return (), ((), {"dim": self.dim, "label": self.label})

    def __repr__(self):
        return "positive definite"


stationary_matrix = _StationaryMatrix()
identified_loadings = _IdentifiedLoadings


# --- bijections ----------------------------------------------------------------------------------
class StationaryTransform(Transform):
    """Unconstrained ``K x K`` matrix -> stationary VAR(1) matrix (`stationary_from_unconstrained`)."""

    domain = constraints.independent(constraints.real, 2)
    codomain = stationary_matrix

    def __call__(self, x):
        return stationary_from_unconstrained(x)

    def _inverse(self, y):
        return unconstrained_from_stationary(y)

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        k = x.shape[-1]

        def one(a):
            jac = jax.jacfwd(lambda v: stationary_from_unconstrained(v.reshape(k, k)).reshape(-1))(a.reshape(-1))
            return jnp.linalg.slogdet(jac)[1]

        flat = x.reshape((-1, k, k))
        return jax.vmap(one)(flat).reshape(x.shape[:-2])

    def tree_flatten(self):
        return (), ((), {})

    def eq(self, other, static=False):
        return isinstance(other, StationaryTransform)


class LoadingsTransform(Transform):
    """Vector of free loadings -> identified ``N x K`` loading matrix (``N`` inferred from the length)."""

    domain = constraints.real_vector

    def __init__(self, num_factors: int):
        self.num_factors = num_factors

    @property
    def codomain(self):
        return _IdentifiedLoadings(self.num_factors)

    def _num_assets(self, num_free: int) -> int:
        k = self.num_factors
        return (num_free + k * (k + 1) // 2) // k

    def __call__(self, x):
        return loadings_from_free(x, self._num_assets(x.shape[-1]), self.num_factors)

    def _inverse(self, y):
        rows, cols = free_loading_index(y.shape[-2], self.num_factors)
        return y[..., rows, cols]

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        # A coordinate embedding: the free entries are copied unchanged.
        return jnp.zeros(x.shape[:-1])

    def forward_shape(self, shape):
        return shape[:-1] + (self._num_assets(shape[-1]), self.num_factors)

    def inverse_shape(self, shape):
        return shape[:-2] + (num_free_loadings(shape[-2], self.num_factors),)

    def tree_flatten(self):
        return (), ((), {"num_factors": self.num_factors})

    def eq(self, other, static=False):
        return isinstance(other, LoadingsTransform) and other.num_factors == self.num_factors


@biject_to.register(_StationaryMatrix)
def _biject_stationary(constraint):
    return StationaryTransform()


@biject_to.register(_IdentifiedLoadings)
def _biject_loadings(constraint):
    return LoadingsTransform(constraint.num_factors)


@biject_to.register(_CovarianceMatrix)
def _biject_covariance(constraint):
    return biject_to(constraints.positive_definite)


# --- prior laws ----------------------------------------------------------------------------------
def _scalar_or_matrix(prior, dim: int, what: str):
    """A law over ``dim x dim`` matrices from a scalar law (iid entries) or one of that event shape."""
    if not isinstance(prior, dist.Distribution):
        raise TypeError(f"{what} must be a numpyro distribution, got {type(prior).__name__}")
    if prior.support.event_dim != 0 and prior.event_shape != (dim, dim):
        raise ValueError(f"{what} must be a scalar law or have event shape ({dim}, {dim}); got {prior.event_shape}")
    if prior.event_shape == (dim, dim):
        return prior
    try:
        return prior.expand(jnp.broadcast_shapes(prior.batch_shape, (dim, dim))).to_event(2)
    except ValueError:
        raise ValueError(f"{what} has batch shape {prior.batch_shape}, which does not broadcast to ({dim}, {dim})") \
            from None


class StationaryMatrix(dist.Distribution):
    r"""Prior over stationary ``K x K`` VAR(1) matrices, defined on the unconstrained scale.

    $\Phi = A\,\mathrm{chol}(I + AA')^{-1}$ (`stationary_from_unconstrained`) with $A$ drawn
    from ``base``. The NumPyro program samples $A$ and records $\Phi$ as a deterministic site, so
    the prior that NUTS sees is exactly ``base``; ``log_prob`` here (used only when the law is sampled
    directly) adds the log-Jacobian of the inverse map.

    Parameters
    ----------
    dim : int
        ``K``.
    base : numpyro distribution, optional
        Law of $A$: a scalar law (iid entries) or one with event shape ``(K, K)``; real support.
        Default: $A_{kk} \sim N(0, 0.5^2)$ and off-diagonal $N(0, 0.5^2)$.
    """

    arg_constraints = {}
    pytree_aux_fields = ("dim", "base")

    def __init__(self, dim: int, base=None, *, validate_args=None):
        self.dim = int(dim)
        base = dist.Normal(0.0, 0.5) if base is None else base
        if base.support.event_dim == 0 and base.support is not constraints.real:
            raise ValueError(f"the base law of a StationaryMatrix prior must have real support, got {base.support}")
        self.base = _scalar_or_matrix(base, self.dim, "the base law of a StationaryMatrix prior")
        super().__init__(batch_shape=(), event_shape=(self.dim, self.dim), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=2)
    def support(self):
        return _StationaryMatrix(self.dim)

    def sample(self, key, sample_shape=()):
        return stationary_from_unconstrained(self.base.sample(key, sample_shape))

    def log_prob(self, value):
        free = unconstrained_from_stationary(value)
        return self.base.log_prob(free) - StationaryTransform().log_abs_det_jacobian(free, value)


class IdentifiedLoadings(dist.Distribution):
    r"""Prior over identified ``N x K`` loading matrices: iid ``free_prior`` on the free entries.

    The first ``K`` rows are lower-triangular with a unit diagonal (asset ``k`` loads on factor ``k`` with
    weight one and not on factors after it); the ``N K - K(K+1)/2`` entries below the diagonal are free.

    Parameters
    ----------
    num_factors : int
    free_prior : numpyro distribution, optional
        Scalar law with real support for each free loading; default $N(0, 1)$.
    num_assets : int, optional
        ``N``; needed to draw from the law.
    """

    arg_constraints = {}
    pytree_aux_fields = ("num_factors", "num_assets", "free_prior")

    def __init__(self, num_factors: int, free_prior=None, num_assets: int | None = None, *, validate_args=None):
        self.num_factors = int(num_factors)
        self.num_assets = int(num_assets) if num_assets is not None else self.num_factors
        free_prior = dist.Normal(0.0, 1.0) if free_prior is None else free_prior
        if not isinstance(free_prior, dist.Distribution) or free_prior.batch_shape != () or \
                free_prior.event_shape != ():
            raise ValueError("the prior of the free loadings must be a scalar numpyro distribution")
        if free_prior.support is not constraints.real:
            raise ValueError(f"the prior of the free loadings must have real support, got {free_prior.support}")
        self.free_prior = free_prior
        super().__init__(batch_shape=(), event_shape=(self.num_assets, self.num_factors),
                         validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=2)
    def support(self):
        return _IdentifiedLoadings(self.num_factors)

    @property
    def num_free(self) -> int:
        return num_free_loadings(self.num_assets, self.num_factors)

    def with_num_assets(self, num_assets: int) -> IdentifiedLoadings:
        """The same prior for ``num_assets`` assets."""
        return IdentifiedLoadings(self.num_factors, self.free_prior, num_assets)

    def sample(self, key, sample_shape=()):
        free = self.free_prior.expand([self.num_free]).sample(key, sample_shape)
        return loadings_from_free(free, self.num_assets, self.num_factors)

    def log_prob(self, value):
        rows, cols = free_loading_index(value.shape[-2], self.num_factors)
        return self.free_prior.log_prob(value[..., rows, cols]).sum(-1)


class ScaledLKJ(dist.Distribution):
    r"""Covariance matrix $Q = \mathrm{diag}(s)\,\Omega\,\mathrm{diag}(s)$ with iid scales and an LKJ correlation.

    $s_k \sim$ ``scale`` (standard deviations), $\Omega \sim \mathrm{LKJ}(\eta)$.

    Notes
    -----
    The map $(s, \omega) \mapsto Q$ from the scales and the off-diagonal correlations is
    block-triangular with Jacobian determinant $2^K \prod_k s_k^K$ (each $Q_{kk} = s_k^2$, each
    $Q_{ij} = s_i s_j \omega_{ij}$), so

    $$
    \log p(Q) = \sum_k \log p_s(s_k) + \log p_{\mathrm{LKJ}}(\Omega) - K \log 2 - K \sum_k \log s_k,
    \qquad s_k = \sqrt{Q_{kk}}.
    $$

    Parameters
    ----------
    dim : int
        ``K``.
    scale : numpyro distribution, optional
        Scalar law on the positive reals for each $s_k$; default ``HalfNormal(1)`` (the SV model's
        prior for $\sigma$).
    concentration : float
        LKJ $\eta$; 1 is uniform over correlation matrices, larger values favour weak correlation.
    """

    arg_constraints = {}
    pytree_aux_fields = ("dim", "scale", "concentration")

    def __init__(self, dim: int, scale=None, concentration: float = 2.0, *, validate_args=None):
        self.dim = int(dim)
        self.scale = dist.HalfNormal(1.0) if scale is None else scale
        if self.scale.batch_shape != () or self.scale.event_shape != ():
            raise ValueError("the scale prior of ScaledLKJ must be a scalar distribution")
        self.concentration = float(concentration)
        super().__init__(batch_shape=(), event_shape=(self.dim, self.dim), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=2)
    def support(self):
        return _CovarianceMatrix(self.dim, "Q_h")

    def sample(self, key, sample_shape=()):
        key_scale, key_corr = jax.random.split(key)
        s = self.scale.expand([self.dim]).sample(key_scale, sample_shape)
        if self.dim == 1:
            chol = jnp.ones(tuple(sample_shape) + (1, 1))
        else:
            chol = dist.LKJCholesky(self.dim, self.concentration).sample(key_corr, sample_shape)
        scaled = s[..., :, None] * chol
        return scaled @ jnp.swapaxes(scaled, -1, -2)

    def log_prob(self, value):
        k = self.dim
        s = jnp.sqrt(jnp.diagonal(value, axis1=-2, axis2=-1))
        log_density = self.scale.log_prob(s).sum(-1) - k * math.log(2.0) - k * jnp.log(s).sum(-1)
        if k > 1:
            corr = value / (s[..., :, None] * s[..., None, :])
            log_density = log_density + dist.LKJ(k, self.concentration).log_prob(corr)
        return log_density
