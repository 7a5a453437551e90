"""Particle marginal Metropolis-Hastings on a noisy AR(1) whose likelihood is exact by the Kalman filter.

(a) With the exact likelihood plugged in, the PMMH kernel is plain random-walk Metropolis-Hastings: its chain
    equals, draw for draw, a naive loop written here with the same random numbers and a dense scipy Gaussian
    likelihood. (b) With adaptation (exact likelihood) and with the particle filter, posterior means and SDs
    match a quadrature posterior on a fine parameter grid within Monte Carlo error from the chains' ESS.
(c) Acceptance is reported and in a sane range; (d) bad arguments raise clear errors.
"""

from dataclasses import dataclass
from typing import NamedTuple

import arviz_stats
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.linalg
import scipy.stats

import bayesvol
from bayesvol.filters import LinearGaussianSSM, kalman_filter
from bayesvol.inference.pmmh import iteration_keys, run_pmmh, sample_pmmh
from bayesvol.models._protocol import LatentStateModelBase

NOISE_SD = 0.5  # known observation noise r
TRUE = {"phi": 0.6, "sigma": 0.7}
NUM_T = 120


class ARParams(NamedTuple):
    phi: jax.Array
    sigma: jax.Array


@dataclass(frozen=True)
class NoisyAR1(LatentStateModelBase):
    """x_t = phi x_{t-1} + sigma eta_t, y_t = x_t + 0.5 eps_t: two free parameters, so a grid gives the posterior."""

    params_type = ARParams
    param_names = ("phi", "sigma")

    def prior_distributions(self):
        return ARParams(dist.Uniform(-1.0, 1.0), dist.HalfNormal(1.0))

    def initial(self, p):
        return dist.Normal(0.0, p.sigma / jnp.sqrt(1.0 - p.phi**2))

    def transition(self, p, x_prev, y_prev=None):
        return dist.Normal(p.phi * x_prev, p.sigma * jnp.ones_like(x_prev))

    def emission(self, p, x):
        return dist.Normal(x, NOISE_SD)

    def describe(self):
        return "noisy AR(1)"


def kalman_loglik(phi, sigma, y):
    ssm = LinearGaussianSSM(jnp.zeros(1), jnp.reshape(sigma**2 / (1 - phi**2), (1, 1)), jnp.reshape(phi, (1, 1)),
                            jnp.zeros(1), jnp.reshape(sigma**2, (1, 1)), jnp.eye(1), jnp.zeros(1),
                            jnp.array([[NOISE_SD**2]]))
    return kalman_filter(ssm, y)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    x = np.empty(NUM_T)
    x[0] = rng.normal(0.0, TRUE["sigma"] / np.sqrt(1 - TRUE["phi"] ** 2))
    for t in range(1, NUM_T):
        x[t] = TRUE["phi"] * x[t - 1] + TRUE["sigma"] * rng.normal()
    return x + NOISE_SD * rng.normal(size=NUM_T)


@pytest.fixture(scope="module")
def grid_posterior(data):
    """Posterior mean and SD of (phi, sigma) by quadrature on a 200 x 200 grid (Kalman likelihood, natural
    scale priors: uniform phi, half-normal sigma)."""
    phi = np.linspace(-0.999, 0.999, 200)
    sigma = np.linspace(1e-3, 2.0, 200)
    grid_phi, grid_sigma = np.meshgrid(phi, sigma, indexing="ij")
    loglik = jax.jit(jax.vmap(lambda p, s: kalman_loglik(p, s, data).log_likelihood))(
        grid_phi.ravel(), grid_sigma.ravel())
    log_post = np.asarray(loglik).reshape(grid_phi.shape) + scipy.stats.halfnorm.logpdf(grid_sigma)
    weights = np.exp(log_post - log_post.max())
    weights /= weights.sum()
    # The grid holds the posterior mass (what lies at its edges moves the moments by less than 1e-4).
    assert weights[:, -1].sum() < 1e-5 and weights[-1, :].sum() < 1e-5 and weights[0, :].sum() < 1e-5
    out = {}
    for name, values in (("phi", grid_phi), ("sigma", grid_sigma)):
        mean = float(np.sum(weights * values))
        out[name] = (mean, float(np.sqrt(np.sum(weights * (values - mean) ** 2))))
    return out


def test_exact_likelihood_kernel_equals_plain_metropolis_hastings(data):
    """Random walk on u = (atanh(phi), log sigma) with the Kalman likelihood against a loop with the dense
    Gaussian density of y (Cholesky of its T x T covariance): same proposals, same decisions, same states."""
    cov = np.array([[0.04, 0.01], [0.01, 0.03]])

    def log_prior(u):  # uniform phi = tanh(u0), half-normal sigma = exp(u1), with the Jacobians
        phi, sigma = jnp.tanh(u[0]), jnp.exp(u[1])
        return jnp.log1p(-phi**2) + u[1] - 0.5 * sigma**2

    def log_likelihood(u, key):
        out = kalman_loglik(jnp.tanh(u[0]), jnp.exp(u[1]), data)
        return out.log_likelihood, out.pointwise_log_likelihood

    key = jax.random.PRNGKey(3)
    num = 100
    trace = jax.jit(lambda k: run_pmmh(log_likelihood, log_prior, jnp.array([0.5, -0.5]), k, num_warmup=0,
                                       num_samples=num, init_covariance=cov))(key)

    def dense_loglik(u):
        phi, sigma = np.tanh(u[0]), np.exp(u[1])
        lags = np.abs(np.subtract.outer(np.arange(NUM_T), np.arange(NUM_T)))
        covariance = sigma**2 / (1 - phi**2) * phi**lags + NOISE_SD**2 * np.eye(NUM_T)
        chol = scipy.linalg.cholesky(covariance, lower=True)
        white = scipy.linalg.solve_triangular(chol, data, lower=True)
        return -0.5 * white @ white - np.sum(np.log(np.diag(chol))) - 0.5 * NUM_T * np.log(2 * np.pi)

    def reference_prior(u):
        return np.log(1 - np.tanh(u[0]) ** 2) + u[1] - 0.5 * np.exp(u[1]) ** 2

    chol = np.linalg.cholesky(cov)
    _, key_chain = jax.random.split(key)

    def numbers(i):  # the random numbers of iteration i, as the kernel draws them
        key_prop, key_accept, _ = iteration_keys(key_chain, i)
        return jax.random.normal(key_prop, (2,)), jax.random.uniform(key_accept)

    normals, uniforms = map(np.asarray, jax.vmap(numbers)(jnp.arange(num)))
    u = np.array([0.5, -0.5])
    current = dense_loglik(u) + reference_prior(u)
    states, accepted = [], []
    for i in range(num):
        proposal = u + chol @ normals[i]
        target = dense_loglik(proposal) + reference_prior(proposal)
        accept = np.log(uniforms[i]) < target - current
        if accept:
            u, current = proposal, target
        states.append(u)
        accepted.append(accept)
    np.testing.assert_allclose(np.asarray(trace.positions), np.array(states), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(np.asarray(trace.accepted), np.array(accepted))
    assert 0.1 < np.mean(accepted) < 0.9


def _check_against_grid(draws, grid_posterior, label):
    """Posterior mean within 4 MC standard errors (SD / sqrt(bulk ESS)) of the quadrature mean; posterior SD
    within 4 of its own MC standard errors (SD / sqrt(2 ESS), the normal-theory SE of an SD) plus 5% for the
    correlation of the chain's squared deviations, which that formula ignores."""
    for name, (mean, sd) in grid_posterior.items():
        values = draws[name]
        ess = float(arviz_stats.ess(values, method="bulk"))
        assert ess > 100, (label, name, ess)
        assert abs(values.mean() - mean) < 4 * sd / np.sqrt(ess), (label, name, values.mean(), mean, ess)
        assert abs(values.std() - sd) < 4 * sd / np.sqrt(2 * ess) + 0.05 * sd, (label, name, values.std(), sd, ess)


def test_adaptive_exact_likelihood_matches_quadrature(data, grid_posterior):
    """Warm-up adaptation starting from a poor proposal, then fixed: the kept draws target the posterior."""
    model = NoisyAR1()

    prior = model.prior_distributions()
    phi_map = dist.biject_to(prior.phi.support)
    sigma_map = dist.biject_to(prior.sigma.support)

    def log_likelihood(u, key):
        out = kalman_loglik(phi_map(u[0]), sigma_map(u[1]), data)
        return out.log_likelihood, out.pointwise_log_likelihood

    def log_prior(u):
        phi, sigma = phi_map(u[0]), sigma_map(u[1])
        return (prior.phi.log_prob(phi) + phi_map.log_abs_det_jacobian(u[0], phi) + prior.sigma.log_prob(sigma)
                + sigma_map.log_abs_det_jacobian(u[1], sigma))

    num_chains = 4
    keys = jax.random.split(jax.random.PRNGKey(11), num_chains)
    trace = jax.jit(jax.vmap(lambda k: run_pmmh(log_likelihood, log_prior, jnp.array([1.0, 0.0]), k,
                                                num_warmup=1000, num_samples=3000,
                                                init_covariance=1e-4 * jnp.eye(2))))(keys)
    draws = {"phi": np.asarray(phi_map(trace.positions[..., 0])), "sigma": np.asarray(sigma_map(
        trace.positions[..., 1]))}
    _check_against_grid(draws, grid_posterior, "adaptive MH")
    # The adapted proposal is 2.38^2 / d times the posterior covariance of u, up to warm-up noise: each chain's
    # comes from the 500 states of the last window (effective size about 50-100 at this acceptance), so the
    # average over 4 chains has a relative SE of about sqrt(2 / 300) ~ 0.1 per variance.
    empirical = np.cov(np.asarray(trace.positions).reshape(-1, 2).T)
    adapted = np.asarray(trace.proposal_covariance).mean(axis=0)
    np.testing.assert_allclose(np.diag(adapted), 2.38**2 / 2 * np.diag(empirical), rtol=0.4)


@pytest.mark.slow
def test_pmmh_with_particle_filter_matches_quadrature(data, grid_posterior):
    idata = bayesvol.sample(NoisyAR1(), data, method="pmmh", num_particles=100, num_warmup=500, num_samples=2500,
                            num_chains=2, seed=1, warn=False, progress_bar=False)
    draws = {name: idata.posterior[name].values for name in ("phi", "sigma")}
    _check_against_grid(draws, grid_posterior, "PMMH")
    # Layout shared with NUTS: parameters on (chain, draw); sample_stats with acceptance; attrs naming the method.
    assert idata.posterior["phi"].dims == ("chain", "draw") and idata.posterior.sizes["draw"] == 2500
    assert idata.sample_stats["acceptance_rate"].shape == (2, 2500)
    assert idata.log_likelihood["y"].shape == (2, 2500, NUM_T)
    attrs = idata.posterior.attrs
    assert attrs["inference"] == "pmmh" and attrs["num_particles"] == 100
    # Random walk in 2-D with a noisy likelihood: acceptance well inside (0.05, 0.6) (0.13 here).
    assert 0.05 < attrs["acceptance"] < 0.6
    assert attrs["acceptance"] == pytest.approx(float(idata.sample_stats["accepted"].mean()))
    # The stored log-likelihood is the particle filter's sum of predictive terms at each draw, close to the exact
    # one (bootstrap PF with 100 particles on 120 steps: MC SD well below 1).
    draw = idata.posterior.isel(chain=0, draw=-1)
    exact = float(kalman_loglik(float(draw["phi"]), float(draw["sigma"]), data).log_likelihood)
    estimate = float(idata.log_likelihood["y"].isel(chain=0, draw=-1).sum())
    assert abs(estimate - exact) < 2.0
    np.testing.assert_allclose(idata.sample_stats["log_likelihood_estimate"].values,
                               idata.log_likelihood["y"].values.sum(-1), rtol=1e-10)


def test_pmmh_latent_path_matches_kalman_smoother(data):
    y = data[:30]
    idata = sample_pmmh(NoisyAR1(), y, num_particles=100, num_warmup=100, num_samples=400, num_chains=1, seed=3,
                        warn=False, latent_path=True)
    latent = idata.posterior["latent"]
    assert latent.dims == ("chain", "draw", "time") and latent.shape == (1, 400, 30)
    paths = latent.values[0]
    phi, sigma = idata.posterior["phi"].values[0], idata.posterior["sigma"].values[0]
    # Each kept path is an exact draw of x_{1:T} given y and the kept (phi, sigma), so path minus the Kalman
    # smoother's mean at those parameters has mean zero. The chain repeats a state (path included) until the
    # next acceptance: residuals are independent between accepted states, so the Monte Carlo SE of their average
    # is sqrt(sum over runs of (run's residual sum)^2) / draws. Allow 4 SEs per time step.
    ssm_means = jax.jit(jax.vmap(lambda p, s: _smoothed_means(p, s, y)))(phi, sigma)
    residuals = paths - np.asarray(ssm_means)
    new_run = np.concatenate([[True], np.any(paths[1:] != paths[:-1], axis=1)])
    run_sums = np.add.reduceat(residuals, np.flatnonzero(new_run), axis=0)
    assert run_sums.shape[0] > 30  # enough accepted states for the SE to mean something
    se = np.sqrt(np.sum(run_sums**2, axis=0)) / paths.shape[0]
    assert np.all(np.abs(residuals.mean(axis=0)) < 4.0 * se)


def _smoothed_means(phi, sigma, y):
    from bayesvol.filters import kalman_smoother

    ssm = LinearGaussianSSM(jnp.zeros(1), jnp.reshape(sigma**2 / (1 - phi**2), (1, 1)), jnp.reshape(phi, (1, 1)),
                            jnp.zeros(1), jnp.reshape(sigma**2, (1, 1)), jnp.eye(1), jnp.zeros(1),
                            jnp.array([[NOISE_SD**2]]))
    return kalman_smoother(ssm, y).smoothed_mean[:, 0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_particles": 0}, "num_particles"),
        ({"num_samples": 0}, "num_samples"),
        ({"num_warmup": -1}, "num_warmup"),
        ({"num_chains": 1.5}, "num_chains"),
        ({"init_scale": 0.0}, "init_scale"),
        ({"init_params": {"phi": 1.5, "sigma": 0.5}}, "outside the support"),
        ({"init_params": {"phi": 0.5}}, "lacks sigma"),
    ],
)
def test_bad_arguments(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_pmmh(NoisyAR1(), data, **kwargs)


def test_models_without_latent_state_are_refused(data):
    with pytest.raises(ValueError, match="latent-state model"):
        bayesvol.sample(bayesvol.models.GARCH(), data, method="pmmh")
    with pytest.raises(ValueError, match="'pmmh'"):
        bayesvol.sample(NoisyAR1(), data, method="pmm")


def test_non_finite_data_is_refused(data):
    bad = np.array(data)
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sample_pmmh(NoisyAR1(), bad, num_samples=5, num_warmup=0)
