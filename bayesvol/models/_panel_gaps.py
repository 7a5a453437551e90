r"""Partly observed rows of a panel: the law of the observed sub-vector, in fixed-shape arrays.

A row $u_t$ of a panel with some entries missing (NaN) contributes the density of its observed entries
$u_{t,o}$, the marginal of the joint law (for a Gaussian or elliptical law, the same law with the rows and
columns of the missing entries deleted from the scale matrix). JAX needs shapes fixed at compile time, so
instead of deleting rows the missing ones are *decoupled*: with $M = \mathrm{diag}(m)$, $m_i = 1$
for an observed entry,

$$
\tilde R = M R M + (I - M), \qquad \tilde u = M u,
$$

is, after a permutation, $\mathrm{blockdiag}(R_{oo}, I)$, and $\tilde u = (u_o, 0)$. So the
Cholesky factor of $\tilde R$ gives $\log\det R_{oo}$ and $u_o' R_{oo}^{-1} u_o$ exactly (the
identity block adds 0 to both), and the density is written with the observed dimension $d_o = \sum m_i$
in place of $k$. A fully missing row has $\tilde R = I$, $d_o = 0$ and density 1.

The same decoupling gives the moments of the missing entries given the observed ones (used by the DCC
correlation recursion, see `expected_outer_product`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import numpyro.distributions as ndist
from jax import lax
from jax.scipy.special import gammaln
from numpyro.distributions import constraints

from bayesvol.distributions._constants import LOG_2PI

__all__ = ["DiagonalScale", "check_panel_gaps", "correlation_loglik", "correlation_of", "correlation_path",
           "decoupled", "expected_outer_product", "observed_log_density", "observed_ptp",
           "pairwise_mean_outer_product", "has_missing_values"]


def decoupled(scale, observed):
    r"""$\tilde R = M R M + (I - M)$ for ``scale`` $R$ (k, k) and the 0/1 mask ``observed`` (k,)."""
    m = observed.astype(scale.dtype)
    return scale * m[:, None] * m[None, :] + jnp.diag(1.0 - m)


def _observed_quadratic(scale, u, observed):
    """``(log det R_oo, u_o' R_oo^{-1} u_o, number observed, chol of the decoupled matrix)``."""
    chol = jnp.linalg.cholesky(decoupled(scale, observed))
    half = jsl.solve_triangular(chol, jnp.where(observed, u, 0.0), lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return logdet, jnp.sum(half**2), jnp.sum(observed.astype(scale.dtype)), chol


def observed_log_density(dist: str, nu, correlation, u, observed):
    r"""Log density of the observed entries of ``u`` (k,) under $N(0, R)$ or the multivariate t with
    ``nu`` degrees of freedom scaled to covariance $R$ (``correlation``); ``observed`` is a boolean mask.

    The marginal of $u_o$ is $N(0, R_{oo})$, or the t with the same ``nu`` and scale
    $c R_{oo}$, $c = (\nu - 2)/\nu$:

    $$
    \log f(u_o) = \log\Gamma\left(\tfrac{\nu + d_o}{2}\right) - \log\Gamma\left(\tfrac{\nu}{2}\right)
    - \tfrac{d_o}{2}\log(\nu\pi c) - \tfrac12\log\det R_{oo}
    - \tfrac{\nu + d_o}{2}\log\left(1 + \tfrac{u_o' R_{oo}^{-1} u_o}{c\,\nu}\right).
    $$

    Zero for a fully missing row. Missing entries of ``u`` may hold anything (NaN included): they are
    replaced by 0 before any arithmetic.
    """
    logdet, quad, d_o, _ = _observed_quadratic(correlation, u, observed)
    if dist == "normal":
        return -0.5 * (d_o * LOG_2PI + logdet + quad)
    c = (nu - 2.0) / nu
    return (gammaln(0.5 * (nu + d_o)) - gammaln(0.5 * nu) - 0.5 * d_o * jnp.log(jnp.pi * nu * c)
            - 0.5 * logdet - 0.5 * (nu + d_o) * jnp.log1p(quad / (c * nu)))


def expected_outer_product(dist: str, nu, correlation, u, observed):
    r"""$E[u u' \mid u_o]$ for $u \sim N(0, R)$ or the unit-variance multivariate t, given the
    observed entries ``u[observed]``; $u u'$ itself when every entry is observed, $R$ when none is.

    With $\hat u_m = R_{mo} R_{oo}^{-1} u_o$ and the Schur complement $S = R_{mm} - R_{mo}
    R_{oo}^{-1} R_{om}$, $E[u u' \mid u_o] = \hat u \hat u' + s\, \mathrm{blockdiag}(0, S)$,
    $\hat u = (u_o, \hat u_m)$, where $s = 1$ for the normal law and
    $s = (\nu + \delta_o)/(\nu + d_o - 2)\cdot(\nu - 2)/\nu$, $\delta_o = u_o' R_{oo}^{-1} u_o
    \,\nu/(\nu - 2)$, for the t (the conditional law of a multivariate t is a t with $\nu + d_o$
    degrees of freedom and scale inflated by $(\nu + \delta_o)/(\nu + d_o)$). The result is positive
    semi-definite. A row without missing entries returns $u u'$ exactly (same arithmetic as before).
    """
    m = observed.astype(correlation.dtype)
    u_o = jnp.where(observed, u, 0.0)
    _, quad, d_o, chol = _observed_quadratic(correlation, u, observed)
    # (R~)^{-1}: blockdiag(R_oo^{-1}, I); M (R~)^{-1} M keeps the R_oo^{-1} block only.
    inverse_observed = jsl.cho_solve((chol, True), jnp.eye(u.shape[0], dtype=correlation.dtype)) \
        * m[:, None] * m[None, :]
    cross = correlation * (1.0 - m)[:, None]                                        # rows of the missing entries
    u_hat = u_o + cross @ (inverse_observed @ u_o)
    schur = (cross - cross @ inverse_observed @ correlation) * (1.0 - m)[None, :]
    if dist == "normal":
        spread = 1.0
    else:
        c = (nu - 2.0) / nu
        spread = (nu + quad / c) / (nu + d_o - 2.0) * c
    conditional = jnp.outer(u_hat, u_hat) + spread * schur
    complete = jnp.all(observed)
    return jnp.where(complete, jnp.outer(u_o, u_o), conditional)


def pairwise_mean_outer_product(u):
    r"""$\bar Q_{ij}$: the mean of $u_{t,i} u_{t,j}$ over the rows where both are observed.

    With every entry observed this is $T^{-1}\sum_t u_t u_t'$ exactly. It is the fixed point of the
    missing-value rule of the recursion: replacing each unobserved product by its expectation
    $\bar Q_{ij}$ in $T^{-1}\sum_t u_t u_t'$ leaves the pairwise means.
    """
    observed = ~jnp.isnan(u)
    filled = jnp.where(observed, u, 0.0)
    counts = observed.T.astype(u.dtype) @ observed.astype(u.dtype)
    return (filled.T @ filled) / lax.max(counts, jnp.ones_like(counts))


def correlation_path(params, dist: str, u, q_bar):
    r"""$Q_t$ of the DCC(1,1) recursion over standardised residuals ``u`` (T, k) with missing entries
    (NaN), from $Q_1 = \bar Q$; returns ``(Q_1..Q_T, Q_{T+1})``.

    $Q_{t+1} = (1-a-b)\bar Q + a\,E[u_t u_t' \mid \mathcal F_{t-1}, u_{t,o}] + b\,Q_t$: the outer product of
    a row with missing entries is replaced by its conditional expectation given the past and the row's observed
    entries (`expected_outer_product` under the law with correlation $R_t$), so that a fully
    missing row steps with $E[u_t u_t' \mid \mathcal F_{t-1}] = R_t$. Complete rows step exactly as
    `bayesvol.models.dcc.q_update`.
    """
    observed = ~jnp.isnan(u)

    def step(q, inputs):
        u_t, observed_t = inputs
        outer = expected_outer_product(dist, params.nu, correlation_of(q), u_t, observed_t)
        return (1.0 - params.dcc_a - params.dcc_b) * q_bar + params.dcc_a * outer + params.dcc_b * q, q

    last, path = lax.scan(step, q_bar, (jnp.where(observed, u, 0.0), observed))
    return path, last


def correlation_of(q):
    r"""$R = \mathrm{diag}(Q)^{-1/2} Q\, \mathrm{diag}(Q)^{-1/2}$."""
    scale = lax.rsqrt(jnp.diagonal(q, axis1=-2, axis2=-1))
    return q * scale[..., :, None] * scale[..., None, :]


def correlation_loglik(dist: str, nu, q_path, u):
    r"""Pointwise log density of the observed entries of each row of ``u`` (T, k; NaN where missing) given
    $Q_t$ (T, k, k): `observed_log_density` with $R_t$ the correlation of $Q_t$."""
    observed = ~jnp.isnan(u)

    def one(q, u_t, observed_t):
        return observed_log_density(dist, nu, correlation_of(q), u_t, observed_t)

    return jax.vmap(one)(q_path, u, observed)


def check_panel_gaps(values, index, assets, min_observed: int, *, pairs: bool = False) -> None:
    """Refuse what a panel with missing values (NaN) cannot hold, naming the column and the fix.

    inf anywhere; a column with every value missing or fewer than ``min_observed`` observed values; with
    ``pairs``, two columns never observed on the same row (their correlation target is undefined).
    """
    values = np.asarray(values)
    infinite = np.isinf(values)
    if infinite.any():
        row, col = (int(i[0]) for i in np.nonzero(infinite))
        when = index[row] if index is not None else row
        raise ValueError(f"y holds inf at row {when}, column {assets[col]!r}; a missing return is NaN, "
                         "an infinite one is a data error (check the prices)")
    observed = ~np.isnan(values)
    counts = observed.sum(axis=0)
    for col, count in enumerate(counts):
        if count == 0:
            raise ValueError(f"column {assets[col]!r} of y is missing (NaN) on every row; drop that column")
        if count < min(min_observed, values.shape[0]):   # too few rows at all: the caller's message
            raise ValueError(f"column {assets[col]!r} of y has {int(count)} observed values (the rest missing); "
                             f"at least {min_observed} are needed: drop that column or use a longer sample")
    if pairs:
        overlap = observed.T.astype(np.int64) @ observed.astype(np.int64)
        never = np.argwhere(overlap == 0)
        if never.size:
            i, j = (int(v) for v in never[0])
            raise ValueError(f"columns {assets[i]!r} and {assets[j]!r} of y are never observed on the same row, "
                             "so their correlation cannot be estimated; drop one of them")


def observed_ptp(values):
    """Range of the observed (not NaN) values of each column."""
    return np.nanmax(values, axis=0) - np.nanmin(values, axis=0)


class DiagonalScale(ndist.Distribution):
    r"""Law of $\mu + D u$ with $D = \mathrm{diag}(\sigma_1, \dots, \sigma_k)$ for a law of $u$.

    The multivariate counterpart of `bayesvol.models._observation.LocationScale`, parametrised by the
    variances $\sigma_i^2$: the log density is the law of $u = D^{-1}(y - \mu)$ minus
    $\sum_i \log\sigma_i$.
    """

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self, base, loc, variance, *, validate_args=None):
        self.base, self.loc, self.scale_squared = base, loc, variance
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(loc)[:-1], jnp.shape(variance)[:-1], base.batch_shape)
        super().__init__(batch_shape=batch_shape, event_shape=base.event_shape, validate_args=validate_args)

    def log_prob(self, value):
        u = (value - self.loc) * lax.rsqrt(self.scale_squared)
        return self.base.log_prob(u) - 0.5 * jnp.sum(jnp.log(self.scale_squared), axis=-1)

    def sample(self, key, sample_shape=()):
        u = self.base.sample(key, sample_shape)
        return self.loc + jnp.sqrt(self.scale_squared) * u

    @property
    def mean(self):
        return jnp.broadcast_to(self.loc, self.batch_shape + self.event_shape)

    @property
    def variance(self):
        r"""Per-coordinate variances $\sigma_i^2$: the law of $u$ has unit variances (a correlation
        matrix, the multivariate t scaled to it)."""
        return jnp.broadcast_to(self.scale_squared, self.batch_shape + self.event_shape)


def has_missing_values(y) -> bool:
    """True when ``y`` holds known numbers with some missing (NaN); False for a traced ``y``."""
    if isinstance(y, jax.core.Tracer):
        return False
    return bool(np.isnan(np.asarray(y)).any())
