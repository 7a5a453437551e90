"""Filters on linear Gaussian state-space models, where the Kalman filter gives the exact likelihood.

The Kalman filter itself is checked against the dense joint Gaussian density of ``y_{1:T}`` (scipy);
the particle filters, EIS and the Bellman filter are then checked against the Kalman filter.
"""

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats

import bayesvol  # noqa: F401  (float64)
from bayesvol.filters import (
    LinearGaussianSSM,
    bellman_filter,
    efficient_importance_sampling,
    kalman_filter,
    kalman_smoother,
    particle_filter,
)
from bayesvol.models._base import simulate_latent


class ARParams(NamedTuple):
    mu: jax.Array
    phi: jax.Array
    sigma: jax.Array
    r: jax.Array


@dataclass(frozen=True)
class NoisyAR1:
    """x_t = mu + phi (x_{t-1} - mu) + sigma eta_t, y_t = x_t + r eps_t: a scalar latent-state model."""

    params_type = ARParams
    param_names = ("mu", "phi", "sigma", "r")

    def prior_distributions(self):
        return ARParams(dist.Normal(0.0, 10.0), dist.Uniform(-1.0, 1.0), dist.HalfNormal(1.0), dist.HalfNormal(1.0))

    def initial(self, p):
        return dist.Normal(p.mu, p.sigma / jnp.sqrt(1.0 - p.phi**2))

    def transition(self, p, x_prev, y_prev=None):
        loc = p.mu + p.phi * (x_prev - p.mu)
        return dist.Normal(loc, p.sigma * jnp.ones_like(loc))

    def emission(self, p, x):
        return dist.Normal(x, p.r)


def ar_ssm(p) -> LinearGaussianSSM:
    return LinearGaussianSSM(
        jnp.array([p["mu"]]), jnp.array([[p["sigma"] ** 2 / (1 - p["phi"] ** 2)]]), jnp.array([[p["phi"]]]),
        jnp.array([p["mu"] * (1 - p["phi"])]), jnp.array([[p["sigma"] ** 2]]), jnp.eye(1), jnp.zeros(1),
        jnp.array([[p["r"] ** 2]]))


class VARParams(NamedTuple):
    a: jax.Array
    r: jax.Array


A_MATRIX = np.array([[0.8, 0.1], [-0.2, 0.6]])
Q_MATRIX = np.array([[0.3, 0.1], [0.1, 0.2]])
P1_MATRIX = np.eye(2)
H_ROW = np.array([1.0, 0.5])


@dataclass(frozen=True)
class NoisyVAR1:
    """A bivariate state observed through one noisy linear combination (MultivariateNormal state law)."""

    params_type = VARParams
    param_names = ("a", "r")

    def prior_distributions(self):
        return VARParams(dist.Normal(0.0, 1.0), dist.HalfNormal(1.0))

    def initial(self, p):
        return dist.MultivariateNormal(jnp.zeros(2), jnp.asarray(P1_MATRIX))

    def transition(self, p, x_prev, y_prev=None):
        loc = x_prev @ (p.a * jnp.asarray(A_MATRIX)).T
        return dist.MultivariateNormal(loc, jnp.asarray(Q_MATRIX))

    def emission(self, p, x):
        return dist.Normal(x @ jnp.asarray(H_ROW), p.r)


def var_ssm(a, r) -> LinearGaussianSSM:
    return LinearGaussianSSM(jnp.zeros(2), jnp.asarray(P1_MATRIX), a * jnp.asarray(A_MATRIX), jnp.zeros(2),
                             jnp.asarray(Q_MATRIX), jnp.asarray(H_ROW)[None, :], jnp.zeros(1), jnp.array([[r**2]]))


def dense_joint(ssm: LinearGaussianSSM, num_steps: int):
    """Mean and covariance of (x_{1:T}, y_{1:T}) by brute force: independent of any recursion."""
    n = ssm.initial_mean.shape[0]
    F, c, Q = (np.asarray(v) for v in (ssm.transition_matrix, ssm.transition_offset, ssm.transition_covariance))
    H, d, R = (np.asarray(v) for v in (ssm.emission_matrix, ssm.emission_offset, ssm.emission_covariance))
    means = [np.asarray(ssm.initial_mean)]
    for _ in range(1, num_steps):
        means.append(F @ means[-1] + c)
    x_mean = np.concatenate(means)
    cov = np.zeros((n * num_steps, n * num_steps))
    marginals = [np.asarray(ssm.initial_covariance)]
    for _ in range(1, num_steps):
        marginals.append(F @ marginals[-1] @ F.T + Q)
    for s in range(num_steps):
        for t in range(s, num_steps):
            block = np.linalg.matrix_power(F, t - s) @ marginals[s]
            cov[t * n:(t + 1) * n, s * n:(s + 1) * n] = block
            cov[s * n:(s + 1) * n, t * n:(t + 1) * n] = block.T
    big_h = np.kron(np.eye(num_steps), H)
    y_mean = big_h @ x_mean + np.tile(d, num_steps)
    y_cov = big_h @ cov @ big_h.T + np.kron(np.eye(num_steps), R)
    return x_mean, cov, y_mean, y_cov, big_h


AR_PARAMS = {"mu": 0.5, "phi": 0.9, "sigma": 0.5, "r": 1.0}


@pytest.fixture(scope="module")
def ar_data():
    p = ARParams(*(jnp.asarray(v) for v in AR_PARAMS.values()))
    return np.asarray(simulate_latent(NoisyAR1(), p, 150, jax.random.PRNGKey(1)).y)


@pytest.fixture(scope="module")
def var_data():
    ssm = var_ssm(1.0, 0.7)
    _, _, y_mean, y_cov, _ = dense_joint(ssm, 40)
    return np.random.default_rng(2).multivariate_normal(y_mean, y_cov)


def test_kalman_filter_and_smoother_match_dense_gaussian(var_data):
    ssm = var_ssm(1.0, 0.7)
    x_mean, x_cov, y_mean, y_cov, big_h = dense_joint(ssm, var_data.shape[0])
    exact = scipy.stats.multivariate_normal(y_mean, y_cov).logpdf(var_data)
    out = kalman_filter(ssm, var_data)
    np.testing.assert_allclose(float(out.log_likelihood), exact, rtol=1e-10)
    # Smoothed moments: the conditional law of x given all of y.
    gain = x_cov @ big_h.T @ np.linalg.inv(y_cov)
    post_mean = (x_mean + gain @ (var_data - y_mean)).reshape(-1, 2)
    post_cov = x_cov - gain @ big_h @ x_cov
    smooth = kalman_smoother(ssm, var_data)
    np.testing.assert_allclose(np.asarray(smooth.smoothed_mean), post_mean, atol=1e-9)
    diag_blocks = np.stack([post_cov[2 * t:2 * t + 2, 2 * t:2 * t + 2] for t in range(var_data.shape[0])])
    np.testing.assert_allclose(np.asarray(smooth.smoothed_covariance), diag_blocks, atol=1e-9)
    # Filtered mean at the last step equals the smoothed one.
    np.testing.assert_allclose(np.asarray(out.filtered_mean[-1]), post_mean[-1], atol=1e-9)


def test_kalman_filter_rejects_bad_shapes():
    ssm = var_ssm(1.0, 0.7)
    with pytest.raises(ValueError, match="emission_matrix"):
        kalman_filter(ssm._replace(emission_matrix=jnp.ones((1, 3))), np.zeros(5))
    with pytest.raises(ValueError, match="inf"):
        kalman_filter(ssm, np.array([0.0, np.inf, 1.0]))


@pytest.mark.parametrize("proposal", ["bootstrap", "auxiliary"])
def test_particle_filter_matches_kalman_and_is_unbiased(ar_data, proposal):
    exact = float(kalman_filter(ar_ssm(AR_PARAMS), ar_data).log_likelihood)
    reps = 200

    def run(key):
        return particle_filter(NoisyAR1(), AR_PARAMS, ar_data, key, 300, proposal=proposal).log_likelihood

    values = np.asarray(jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(7), reps)))
    sd = values.std(ddof=1)
    # exp(estimate) is unbiased for the likelihood: the mean ratio is 1 within 4 of its standard errors.
    ratios = np.exp(values - exact)
    assert abs(ratios.mean() - 1.0) < 4.0 * ratios.std(ddof=1) / np.sqrt(reps)
    # The log estimate is then biased down by about var/2 (log-normal CLT); the mean matches the Kalman
    # value within 4 Monte Carlo standard errors once that known bias is allowed for.
    assert abs(values.mean() + 0.5 * sd**2 - exact) < 4.0 * sd / np.sqrt(reps) + 0.25 * sd**2
    assert sd < 1.0


def test_particle_filter_smooth_resampling_and_ess_threshold(ar_data):
    exact = float(kalman_filter(ar_ssm(AR_PARAMS), ar_data).log_likelihood)

    def run(key, resampling, threshold):
        return particle_filter(NoisyAR1(), AR_PARAMS, ar_data, key, 300, resampling=resampling,
                               ess_threshold=threshold)

    keys = jax.random.split(jax.random.PRNGKey(3), 100)
    for resampling, threshold in (("smooth", 1.0), ("systematic", 0.5)):
        out = jax.jit(jax.vmap(lambda k, r=resampling, e=threshold: run(k, r, e)))(keys)
        values = np.asarray(out.log_likelihood)
        sd = values.std(ddof=1)
        # Smooth resampling is only consistent (bias O(1/N)); allow the log-normal bias plus 5 standard errors.
        assert abs(values.mean() - exact) < 5.0 * sd / np.sqrt(values.size) + sd**2
        resampled = np.asarray(out.resampled)
        assert not resampled[:, 0].any()
        if threshold == 1.0:
            assert resampled[:, 1:].all()
        else:
            assert 0.0 < resampled.mean() < 1.0
        ess = np.asarray(out.ess)
        assert np.all((ess >= 1.0 - 1e-9) & (ess <= 300 + 1e-9))


def test_particle_filter_filtered_moments_match_kalman(ar_data):
    kf = kalman_filter(ar_ssm(AR_PARAMS), ar_data)
    out = particle_filter(NoisyAR1(), AR_PARAMS, ar_data, 0, 20000)
    kf_mean = np.asarray(kf.filtered_mean[:, 0])
    kf_var = np.asarray(kf.filtered_covariance[:, 0, 0])
    # Monte Carlo sd of a weighted mean is about sqrt(var / ESS); allow 5 of those.
    tol = 5.0 * np.sqrt(kf_var / np.asarray(out.ess))
    assert np.all(np.abs(np.asarray(out.filtered_mean) - kf_mean) < tol)
    np.testing.assert_allclose(np.asarray(out.filtered_variance), kf_var, rtol=0.1)
    # The pointwise predictive terms sum to the total and track the exact ones.
    np.testing.assert_allclose(float(out.pointwise_log_likelihood.sum()), float(out.log_likelihood))
    assert np.max(np.abs(np.asarray(out.pointwise_log_likelihood - kf.pointwise_log_likelihood))) < 0.05


def test_particle_filter_latent_path_matches_kalman_smoother(ar_data):
    y = ar_data[:40]
    smoother = kalman_smoother(ar_ssm(AR_PARAMS), y)
    reps = 400

    def run(key):
        out = particle_filter(NoisyAR1(), AR_PARAMS, y, key, 200, latent_path=True)
        return out.log_likelihood, out.latent_path

    logliks, paths = (np.asarray(v) for v in jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(11), reps)))
    assert paths.shape == (reps, 40)
    # A path traced from the final weights, weighted by the likelihood estimate, is an exact draw from
    # p(x_{1:T} | y): E[p_hat x_{1:T}] / E[p_hat] is the smoothed mean. Self-normalised over the runs, with
    # Monte Carlo SE sqrt(sum_r w_r^2 (x_r - mean)^2) per time step; allow 4 of those.
    weights = np.exp(logliks - logliks.max())
    weights /= weights.sum()
    mean = weights @ paths
    se = np.sqrt(weights**2 @ (paths - mean) ** 2)
    assert np.all(np.abs(mean - np.asarray(smoother.smoothed_mean[:, 0])) < 4.0 * se)
    # Spread: the weighted variance matches the smoothed variance on average over time (relative SD of a
    # variance from about 1 / sum(w^2) draws is sqrt(2 / that), shrunk further by averaging over the steps).
    variance = weights @ (paths - mean) ** 2
    ratio = np.mean(variance / np.asarray(smoother.smoothed_covariance[:, 0, 0]))
    assert abs(ratio - 1.0) < 4.0 * np.sqrt(2.0 * np.sum(weights**2))
    with pytest.raises(ValueError, match="latent_path"):
        particle_filter(NoisyAR1(), AR_PARAMS, y, 0, 10, resampling="smooth", latent_path=True)


def test_eis_and_bellman_are_exact_for_linear_gaussian(ar_data):
    exact = kalman_filter(ar_ssm(AR_PARAMS), ar_data)
    eis = efficient_importance_sampling(NoisyAR1(), AR_PARAMS, ar_data, key=0, num_draws=8)
    np.testing.assert_allclose(float(eis.log_likelihood), float(exact.log_likelihood), atol=1e-6)
    assert float(eis.monte_carlo_sd) < 1e-6
    smooth = kalman_smoother(ar_ssm(AR_PARAMS), ar_data)
    np.testing.assert_allclose(np.asarray(eis.smoothed_mean), np.asarray(smooth.smoothed_mean[:, 0]), atol=1e-6)
    bf = bellman_filter(NoisyAR1(), AR_PARAMS, ar_data)
    np.testing.assert_allclose(float(bf.log_likelihood), float(exact.log_likelihood), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(bf.filtered_mean), np.asarray(exact.filtered_mean), atol=1e-9)
    np.testing.assert_allclose(np.asarray(bf.filtered_covariance), np.asarray(exact.filtered_covariance),
                               atol=1e-9)


def test_vector_state_bellman_exact_and_particle_filter(var_data):
    exact = kalman_filter(var_ssm(1.0, 0.7), var_data)
    params = {"a": 1.0, "r": 0.7}
    bf = bellman_filter(NoisyVAR1(), params, var_data)
    np.testing.assert_allclose(float(bf.log_likelihood), float(exact.log_likelihood), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(bf.filtered_mean), np.asarray(exact.filtered_mean), atol=1e-8)

    def run(key, proposal):
        return particle_filter(NoisyVAR1(), params, var_data, key, 400, proposal=proposal).log_likelihood

    for proposal in ("bootstrap", "auxiliary"):
        values = np.asarray(jax.vmap(lambda k, q=proposal: run(k, q))(jax.random.split(jax.random.PRNGKey(5), 40)))
        ratios = np.exp(values - float(exact.log_likelihood))
        assert abs(ratios.mean() - 1.0) < 4.0 * ratios.std(ddof=1) / np.sqrt(values.size)
    with pytest.raises(ValueError, match="scalar latent state"):
        particle_filter(NoisyVAR1(), params, var_data, 0, 10, resampling="smooth")
    with pytest.raises(ValueError, match="scalar latent state"):
        efficient_importance_sampling(NoisyVAR1(), params, var_data, 0, 8)


def test_filters_vmap_over_parameters_matches_loop(ar_data):
    grid = {"mu": jnp.array([0.0, 0.5, 1.0]), "phi": jnp.array([0.5, 0.9, 0.95]), "sigma": jnp.full(3, 0.5),
            "r": jnp.array([1.0, 1.0, 0.5])}
    batched = jax.vmap(lambda p: bellman_filter(NoisyAR1(), p, ar_data).log_likelihood)(grid)
    for i in range(3):
        p = {k: float(v[i]) for k, v in grid.items()}
        np.testing.assert_allclose(float(batched[i]), float(kalman_filter(ar_ssm(p), ar_data).log_likelihood),
                                   rtol=1e-10)
    pf_batched = jax.vmap(lambda p: particle_filter(NoisyAR1(), p, ar_data, 4, 100).log_likelihood)(grid)
    for i in range(3):
        p = {k: float(v[i]) for k, v in grid.items()}
        np.testing.assert_allclose(float(pf_batched[i]),
                                   float(particle_filter(NoisyAR1(), p, ar_data, 4, 100).log_likelihood), rtol=1e-9)
