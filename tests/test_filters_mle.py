"""``log_likelihood`` and ``fit`` for SV with the filter-based methods, against an exact MLE by quadrature."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import bayesvol
from bayesvol.filters import bellman_filter, efficient_importance_sampling, particle_filter, sv_qml_filter


def quadrature_loglik(theta, y, num_points=240, width=7.0):
    """Exact SV log-likelihood (normal errors) by the forward recursion on a grid of h, in JAX so that scipy
    can maximise it with exact gradients. Independent of the package's filters."""
    mu, phi, sigma = theta
    sd0 = sigma / jnp.sqrt(1.0 - phi**2)
    grid = mu + sd0 * jnp.linspace(-width, width, num_points)
    step = grid[1] - grid[0]

    def normal_pdf(x, loc, scale):
        return jnp.exp(-0.5 * ((x - loc) / scale) ** 2) / (jnp.sqrt(2.0 * jnp.pi) * scale)

    kernel = normal_pdf(grid[None, :], mu + phi * (grid[:, None] - mu), sigma) * step
    log_emission = -0.5 * jnp.log(2.0 * jnp.pi) - 0.5 * grid[None, :] - 0.5 * y[:, None] ** 2 * jnp.exp(-grid)[None, :]

    def body(pred, log_g):
        shift = jnp.max(log_g)
        joint = pred * jnp.exp(log_g - shift)
        norm = jnp.sum(joint)
        return (joint / norm) @ kernel, jnp.log(norm) + shift

    _, terms = jax.lax.scan(body, normal_pdf(grid, mu, sd0) * step, log_emission)
    return jnp.sum(terms)


@pytest.fixture(scope="module")
def gbpusd_exact(gbpusd):
    y = jnp.asarray(gbpusd.to_numpy())
    value_and_grad = jax.jit(jax.value_and_grad(lambda u: -quadrature_loglik(
        jnp.array([u[0], jnp.tanh(u[1]), jnp.exp(u[2])]), y)))
    res = scipy.optimize.minimize(lambda u: tuple(np.asarray(v) for v in value_and_grad(jnp.asarray(u))),
                                  np.array([-0.7, np.arctanh(0.97), np.log(0.2)]), jac=True, method="BFGS")
    theta = np.array([res.x[0], np.tanh(res.x[1]), np.exp(res.x[2])])
    hessian = np.asarray(jax.hessian(lambda t: quadrature_loglik(t, y))(jnp.asarray(theta)))
    se = np.sqrt(np.diag(np.linalg.inv(-hessian)))
    names = ("mu", "phi", "sigma")
    return {"theta": dict(zip(names, theta, strict=True)), "se": dict(zip(names, se, strict=True)),
            "loglik": -float(res.fun)}


def test_quadrature_mle_is_converged(gbpusd, gbpusd_exact):
    y = jnp.asarray(gbpusd.to_numpy())
    theta = jnp.array(list(gbpusd_exact["theta"].values()))
    assert abs(float(quadrature_loglik(theta, y, num_points=600, width=9.0)) - gbpusd_exact["loglik"]) < 1e-6
    # The published estimates for this series are about phi = 0.975, sigma = 0.17 (Durbin & Koopman).
    assert 0.95 < gbpusd_exact["theta"]["phi"] < 0.99 and 0.1 < gbpusd_exact["theta"]["sigma"] < 0.25


def test_log_likelihood_dispatches_to_the_filters(gbpusd):
    model = bayesvol.models.SV()
    params = {"mu": -0.7, "phi": 0.975, "sigma": 0.17}
    y = gbpusd.to_numpy()[:200]
    cases = {
        "pf": (dict(num_particles=300, seed=3, resampling="systematic", ess_threshold=0.5),
               particle_filter(model, params, y, 3, 300, ess_threshold=0.5).log_likelihood),
        "eis": (dict(num_draws=16, seed=2), efficient_importance_sampling(model, params, y, 2, 16).log_likelihood),
        "bellman": ({}, bellman_filter(model, params, y).log_likelihood),
        "qml": ({}, sv_qml_filter(model, params, y).log_likelihood),
    }
    for method, (options, expected) in cases.items():
        got = bayesvol.log_likelihood(model, params, gbpusd.iloc[:200], method=method, **options)
        assert abs(got - float(expected)) < 1e-8, method
        pointwise = bayesvol.log_likelihood(model, params, y, method=method, pointwise=True, **options)
        assert pointwise.shape == (200,) and abs(pointwise.sum() - got) < 1e-8


@pytest.mark.slow
def test_eis_mle_matches_exact_mle_on_gbpusd(gbpusd, gbpusd_exact):
    model = bayesvol.models.SV()
    exact, se = gbpusd_exact["theta"], gbpusd_exact["se"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eis = bayesvol.fit(model, gbpusd, method="eis", num_draws=32, num_starts=1)
    assert eis.converged
    for name in exact:
        # Same estimates up to a small fraction of the standard error (EIS Monte Carlo error is ~0.03 in
        # log-likelihood, which moves the optimum by far less than one SE).
        assert abs(eis.params[name] - exact[name]) < 0.2 * se[name], (name, eis.params[name], exact[name])
        assert abs(eis.se[name] / se[name] - 1.0) < 0.2
    # The maximised EIS log-likelihood equals the exact maximum within 4 Monte Carlo SDs.
    mc_sd = eis.diagnostics["loglik_mc_sd"]
    assert mc_sd < 0.1
    assert abs(eis.loglik - gbpusd_exact["loglik"]) < 4.0 * mc_sd
    assert "eis" in eis.summary()


def test_pf_mle_on_short_series_is_near_exact(gbpusd):
    y = jnp.asarray(gbpusd.to_numpy()[:300])
    model = bayesvol.models.SV()
    start = {"mu": -0.7, "phi": 0.95, "sigma": 0.2}
    # Only the estimate is checked here: the particle filter's own Hessian (se_method="pf") spares compiling the
    # EIS one that gives the standard errors by default (checked in test_pf_standard_errors).
    res = bayesvol.fit(model, np.asarray(y), method="pf", num_particles=400, start=start, warn=False, se_method="pf")
    exact = jnp.array([res.params[n] for n in ("mu", "phi", "sigma")])
    # The PF optimum is the exact optimum up to Monte Carlo noise: the exact log-likelihood there is within
    # a few Monte Carlo SDs of the exact maximum, and the reported SD is a proper replication estimate.
    grad = jax.jit(jax.value_and_grad(lambda t: -quadrature_loglik(t, y)))
    best = scipy.optimize.minimize(lambda t: tuple(np.asarray(v) for v in grad(jnp.asarray(t))),
                                   np.asarray(exact), jac=True, method="L-BFGS-B",
                                   bounds=[(-5, 5), (0.0, 0.999), (0.01, 2.0)])
    mc_sd = res.diagnostics["loglik_mc_sd"]
    assert 0.0 < mc_sd < 1.0
    assert -best.fun - float(quadrature_loglik(exact, y)) < max(1.0, 3 * mc_sd)


def test_qml_fit_is_consistent_on_simulated_data():
    model = bayesvol.models.SV()
    truth = {"mu": -0.5, "phi": 0.95, "sigma": 0.25}
    y = bayesvol.simulate(model, truth, 1500, seed=5).y
    res = bayesvol.fit(model, y, method="qml", num_starts=1)
    for name, value in truth.items():
        assert abs(res.params[name] - value) < 3.0 * res.robust_se[name], name
