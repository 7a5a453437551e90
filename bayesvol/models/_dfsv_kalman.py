"""Kalman filter and RTS smoother for the DFSV factors given their log-variances.

Given the log-variance paths, the factors follow a linear-Gaussian state-space model:
``r_t = Lambda f_t + eps_t``, ``eps_t ~ N(0, diag(d_t))`` and ``f_t = Phi_f f_{t-1} + nu_t``,
``nu_t ~ N(0, diag(exp(h_t)))``. Because the observation noise is diagonal, the data enter each update only
through ``K``-dimensional statistics (``Lambda' D_t^{-1} Lambda``, ``Lambda' D_t^{-1} r_t``, ...), computed for
all time steps at once before the recursion; a step then costs O(K^3) whatever ``N``.

The factor dimension is small, so the ``K x K`` Cholesky factorisations and triangular solves are written out
entry by entry (`bayesvol.models._linalg`). The prediction step is the factor VAR of
`bayesvol.models._dfsv_state.factor_moments`, the first predicted law its stationary law
`factor_stationary_cov`.

Why not the generic [`bayesvol.filters.kalman_filter`][bayesvol.filters.kalman_filter]: it works in covariance form,
factorising the ``N x N`` innovation covariance at every step (O(N^3) per step, and a (T, N, N) observation covariance
when the idiosyncratic variances vary over time), and it runs one model at a time. Here a step costs
O(K^3) whatever ``N``, and the update accepts batch axes, so the Rao-Blackwellised particle filter runs one
Kalman update for all particles at once. The generic filter serves as the independent check in the tests.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

from bayesvol.distributions._constants import LOG_2PI
from bayesvol.models._dfsv_state import factor_moments, factor_stationary_cov
from bayesvol.models._linalg import cho_solve, cholesky, mm, mT, mv, solve_lower, solve_upper

__all__ = ["FactorFilterOutput", "FactorMarginal", "ObservationStats", "expected_complete_loglik", "filter_factors",
           "lag_one_covariances", "marginal_loglik", "observation_stats", "smooth_factors", "update_with_stats"]


# --- the filter -----------------------------------------------------------------------------------
class ObservationStats(NamedTuple):
    """What one observation ``r_t ~ N(Lambda f_t, diag(d_t))`` tells about ``f_t``.

    ``gram`` = ``Lambda' D^{-1} Lambda`` (K, K), ``score`` = ``Lambda' D^{-1} r`` (K,), ``quad`` =
    ``r' D^{-1} r`` and ``logdet`` = ``sum(log d)``; ``num_assets`` is ``N``. With missing returns (NaN) the sums
    run over the observed assets of each row and ``num_assets`` is their number per row: the statistics of the
    observed sub-vector, so the update is the Kalman update on the observed rows of ``Lambda`` (a fully missing
    row gives zeros: a pure prediction step).
    """

    gram: jnp.ndarray
    score: jnp.ndarray
    quad: jnp.ndarray
    logdet: jnp.ndarray
    num_assets: int


def observation_stats(loadings, idio_var, y) -> ObservationStats:
    """`ObservationStats` for every row of ``y`` (T, N); ``idio_var`` is (N,) or (T, N).

    Missing entries of ``y`` (NaN) get precision 0; with none missing the arithmetic is unchanged.
    """
    idio_var = jnp.broadcast_to(idio_var, y.shape)
    observed = ~jnp.isnan(y)
    y = jnp.where(observed, y, 0.0)
    scaled_y = jnp.where(observed, y / idio_var, 0.0)
    gram = jnp.einsum("ik,ti,il->tkl", loadings, jnp.where(observed, 1.0 / idio_var, 0.0), loadings)
    return ObservationStats(gram, scaled_y @ loadings, jnp.sum(y * scaled_y, -1),
                            jnp.sum(jnp.where(observed, jnp.log(idio_var), 0.0), -1),
                            jnp.sum(observed, -1).astype(y.dtype))


def update_with_stats(pred_mean, pred_cov, gram, score, quad, logdet, num_assets: int):
    r"""One Kalman measurement update for ``r = Lambda f + e``, ``e ~ N(0, D)``, from its statistics.

    Returns ``(log p(r), filtered mean, filtered covariance)``; all arrays may carry leading batch axes.

    Notes
    -----
    With $P = LL'$ the predicted covariance, $W = \Lambda' D^{-1} \Lambda$ and
    $M = I + L' W L \succeq I$ (Woodbury identity and the matrix determinant lemma):

    $$
    \log\det S &= \textstyle\sum_i \log d_i + \log\det M, \qquad S = \Lambda P \Lambda' + D, \\
    v' S^{-1} v &= v' D^{-1} v - u' M^{-1} u, \qquad v = r - \Lambda m, \quad u = L'(\Lambda' D^{-1} r - W m), \\
    m_{t|t} &= m + L M^{-1} u, \qquad P_{t|t} = L M^{-1} L',
    $$

    with $v' D^{-1} v = r' D^{-1} r - 2 m' \Lambda' D^{-1} r + m' W m$. Only ``K x K`` matrices are
    factorised and $P$ itself is never inverted. The quadratic form subtracts two terms of size
    $r' D^{-1} r$, so about $\log_{10}(\max P / \min d)$ digits are lost to cancellation:
    negligible unless an idiosyncratic variance is many orders of magnitude below the factor variance.
    """
    k = pred_mean.shape[-1]
    chol_pred = cholesky(pred_cov)
    gram_mean = mv(gram, pred_mean)
    chol_m = cholesky(jnp.eye(k) + mm(mm(mT(chol_pred), gram), chol_pred))
    u = mv(mT(chol_pred), score - gram_mean)
    half_u = solve_lower(chol_m, u)
    resid_quad = quad - 2.0 * jnp.sum(pred_mean * score, -1) + jnp.sum(pred_mean * gram_mean, -1)
    logdet_s = logdet + 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol_m, axis1=-2, axis2=-1)), -1)
    loglik = -0.5 * (num_assets * LOG_2PI + logdet_s + resid_quad - jnp.sum(half_u**2, -1))
    mean = pred_mean + mv(chol_pred, solve_upper(chol_m, half_u))
    half = solve_lower(chol_m, mT(chol_pred))
    return loglik, mean, mm(mT(half), half)


class FactorFilterOutput(NamedTuple):
    """Kalman filter output: ``pointwise_log_likelihood``, the terms ``log p(r_t | r_{1:t-1}, h)`` (T,), and the
    filtered and predicted moments; ``log_likelihood`` is their sum (``loglik`` the former name of the terms)."""

    pointwise_log_likelihood: jnp.ndarray
    filtered_mean: jnp.ndarray
    filtered_cov: jnp.ndarray
    predicted_mean: jnp.ndarray
    predicted_cov: jnp.ndarray

    @property
    def log_likelihood(self):
        """The log-likelihood given the log-variances: the sum of `pointwise_log_likelihood`."""
        return jnp.sum(self.pointwise_log_likelihood)

    @property
    def loglik(self):
        """Former name of `pointwise_log_likelihood`."""
        return self.pointwise_log_likelihood


def filter_factors(loadings, Phi_f, h, idio_var, y) -> FactorFilterOutput:
    """Kalman filter for the factors given log-variances ``h`` (T, K) and idiosyncratic variances.

    ``idio_var`` is (N,) (constant) or (T, N). The first predicted law is ``N(0, Gamma_f(h_1))``,
    ``Gamma_f(h) = Phi_f Gamma_f(h) Phi_f' + diag(exp(h))``.
    """
    k = h.shape[-1]
    stats = observation_stats(loadings, idio_var, y)
    next_h = jnp.concatenate([h[1:], h[-1:]])

    def step(carry, inputs):
        pred_mean, pred_cov = carry
        gram, score, quad, logdet, count, h_next = inputs
        loglik, mean, cov = update_with_stats(pred_mean, pred_cov, gram, score, quad, logdet, count)
        return factor_moments(Phi_f, h_next, mean, cov), (loglik, mean, cov, pred_mean, pred_cov)

    first = (jnp.zeros(k), factor_stationary_cov(Phi_f, h[0]))
    _, outputs = lax.scan(step, first, (stats.gram, stats.score, stats.quad, stats.logdet, stats.num_assets, next_h))
    return FactorFilterOutput(*outputs)


def smooth_factors(Phi_f, out: FactorFilterOutput):
    r"""Rauch–Tung–Striebel smoother: means (T, K) and covariances (T, K, K) of $f_t \mid r_{1:T}, h$.

    $J_t = P_{t|t} \Phi_f' P_{t+1|t}^{-1}$, $m_{t|T} = m_{t|t} + J_t (m_{t+1|T} - m_{t+1|t})$,
    $P_{t|T} = P_{t|t} + J_t (P_{t+1|T} - P_{t+1|t}) J_t'$.
    """

    def step(carry, inputs):
        smooth_mean_next, smooth_cov_next = carry
        mean, cov, pred_mean_next, pred_cov_next = inputs
        chol = cholesky(pred_cov_next)
        gain = mT(cho_solve(chol, Phi_f @ cov))
        smooth_mean = mean + gain @ (smooth_mean_next - pred_mean_next)
        smooth_cov = cov + gain @ (smooth_cov_next - pred_cov_next) @ gain.T
        return (smooth_mean, 0.5 * (smooth_cov + smooth_cov.T)), (smooth_mean, smooth_cov)

    last = (out.filtered_mean[-1], out.filtered_cov[-1])
    inputs = (out.filtered_mean[:-1], out.filtered_cov[:-1], out.predicted_mean[1:], out.predicted_cov[1:])
    _, (means, covs) = lax.scan(step, last, inputs, reverse=True)
    return jnp.concatenate([means, last[0][None]]), jnp.concatenate([covs, last[1][None]])


def lag_one_covariances(Phi_f, out: FactorFilterOutput, smoothed_cov):
    r"""Smoothed cross-covariances $\mathrm{Cov}(f_t, f_{t-1} \mid r_{1:T}) = P_{t|T} J_{t-1}'$, (T-1, K, K).

    $J_{t-1} = P_{t-1|t-1} \Phi_f' P_{t|t-1}^{-1}$ is the smoother gain: given $f_t$ and
    $r_{1:t-1}$, $f_{t-1}$ has mean $m_{t-1|t-1} + J_{t-1}(f_t - m_{t|t-1})$. Computed for all
    ``t`` at once (no recursion).
    """
    chol = cholesky(out.predicted_cov[1:])
    gain = mT(cho_solve(chol, mm(jnp.broadcast_to(Phi_f, out.filtered_cov[:-1].shape), out.filtered_cov[:-1])))
    return mm(smoothed_cov[1:], mT(gain))


def expected_complete_loglik(loadings, Phi_f, h, idio_var, y, smoothed_mean, smoothed_cov, lag_one_cov):
    r"""Expected complete-data log-likelihood $E[\log p(r_{1:T}, f_{1:T} \mid h, \theta)]$ under given
    smoothing moments of the factors; a sum over time with no recursion.

    Notes
    -----
    With $m_t, P_t$ the smoothed means and covariances, $M_t = P_t + m_t m_t'$ and
    $C_t = \mathrm{Cov}(f_t, f_{t-1}) + m_t m_{t-1}'$:

    $$
    E \log p(r, f) = \sum_t \sum_i \big[\log N(r_{ti}; \lambda_i' m_t, d_{ti})
    - \tfrac12 \lambda_i' P_t \lambda_i / d_{ti}\big] \\
    - \tfrac12 [K \log 2\pi + \log\det\Gamma_f(h_1) + \mathrm{tr}\,\Gamma_f(h_1)^{-1} M_1] \\
    - \tfrac12 \sum_{t \ge 2} \sum_j [\log 2\pi + h_{tj} + e^{-h_{tj}} (M_t - C_t \Phi_f' - \Phi_f C_t'
    + \Phi_f M_{t-1} \Phi_f')_{jj}].
    $$
    """
    k = h.shape[-1]
    idio_var = jnp.broadcast_to(idio_var, y.shape)
    observed = ~jnp.isnan(y)                      # a missing return adds no measurement term
    resid = jnp.where(observed, y, 0.0) - smoothed_mean @ loadings.T
    spread = jnp.einsum("ik,tkl,il->ti", loadings, smoothed_cov, loadings)
    measurement = -0.5 * jnp.sum(jnp.where(observed, LOG_2PI + jnp.log(idio_var) + (resid**2 + spread) / idio_var,
                                           0.0))
    second = smoothed_cov + smoothed_mean[:, :, None] * smoothed_mean[:, None, :]
    cross = lag_one_cov + smoothed_mean[1:, :, None] * smoothed_mean[:-1, None, :]
    cross_phi = jnp.einsum("tab,jb->taj", cross, Phi_f)                        # C_t Phi_f'
    shock_second = (jnp.diagonal(second[1:], axis1=-2, axis2=-1)
                    - 2.0 * jnp.diagonal(cross_phi, axis1=-2, axis2=-1)
                    + jnp.einsum("ja,tab,jb->tj", Phi_f, second[:-1], Phi_f))
    transition = -0.5 * jnp.sum(LOG_2PI + h[1:] + jnp.exp(-h[1:]) * shock_second)
    start_cov = factor_stationary_cov(Phi_f, h[0])
    chol = cholesky(start_cov)
    start = -0.5 * (k * LOG_2PI + 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
                    + jnp.trace(cho_solve(chol, second[0])))
    return measurement + transition + start


class FactorMarginal(NamedTuple):
    """Output of `marginal_loglik`: ``log_likelihood`` (the total, with the Fisher-identity gradient), its
    terms ``pointwise_log_likelihood`` (T,), smoothed means (T, K) and covariances (T, K, K) of the factors.
    (``total`` and ``loglik`` are the former names of the first two.)"""

    log_likelihood: jnp.ndarray
    pointwise_log_likelihood: jnp.ndarray
    smoothed_mean: jnp.ndarray
    smoothed_cov: jnp.ndarray

    @property
    def total(self):
        """Former name of [`log_likelihood`][bayesvol.log_likelihood]."""
        return self.log_likelihood

    @property
    def loglik(self):
        """Former name of `pointwise_log_likelihood`."""
        return self.pointwise_log_likelihood


def marginal_loglik(loadings, Phi_f, h, idio_var, y) -> FactorMarginal:
    r"""$\log p(r_{1:T} \mid h, \theta)$ with the factors integrated out, and a cheap exact gradient.

    The value is the Kalman filter's (`filter_factors`). The gradient with respect to every argument
    comes from Fisher's identity, $\nabla_\theta \log p(r \mid \theta) = E[\nabla_\theta \log p(r, f
    \mid \theta) \mid r]$: the derivative of `expected_complete_loglik` with the smoothing moments held
    fixed. It costs a filter, a smoother and one pass of vectorised arithmetic, instead of reverse-mode
    differentiation through the filter's recursion (several times slower on CPU, as every step's small
    matrix operations are replayed backwards). Only first derivatives are exact this way; use
    `filter_factors` where higher derivatives are needed.
    """
    frozen = [lax.stop_gradient(jnp.asarray(a)) for a in (loadings, Phi_f, h, idio_var)]
    out = filter_factors(*frozen, y)
    mean, cov = smooth_factors(frozen[1], out)
    lag_one = lag_one_covariances(frozen[1], out, cov)
    expected = expected_complete_loglik(loadings, Phi_f, h, idio_var, y, mean, cov, lag_one)
    total = out.pointwise_log_likelihood.sum() + expected - lax.stop_gradient(expected)
    return FactorMarginal(total, out.pointwise_log_likelihood, mean, cov)
