"""Filters on SV models against an exact likelihood by quadrature, the `particles` package, a naive
Kalman loop (QML) and a naive Bellman loop; resampling schemes; errors and parameter boundaries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.stats

import bayesvol
from bayesvol.filters import (
    bellman_filter,
    efficient_importance_sampling,
    particle_filter,
    sv_qml_filter,
)
from bayesvol.filters.resampling import (
    effective_sample_size,
    normalise_log_weights,
    smooth_resample,
    systematic_resample,
)

NUM_STEPS = 150


def _normal_pdf(x, loc, scale):
    return np.exp(-0.5 * ((x - loc) / scale) ** 2) / (np.sqrt(2.0 * np.pi) * scale)


def quadrature_loglik(y, mu, phi, sigma, nu=None, rho=None, num_points=600, width=7.0):
    """Exact SV log-likelihood by the forward recursion on a fine grid of h (Riemann sums of Gaussian
    kernels, accurate to many digits when the spacing is well below sigma). A missing y_t (NaN) has no
    emission, and under leverage the step after it uses the kernel without the return's shock."""
    sd0 = sigma / np.sqrt(1.0 - phi**2)
    grid = np.linspace(mu - width * sd0, mu + width * sd0, num_points)
    step = grid[1] - grid[0]
    scale = np.exp(grid / 2.0)
    y = np.asarray(y, dtype=float)
    if nu is None:
        log_emission = scipy.stats.norm.logpdf(y[:, None], 0.0, scale[None, :])
    else:
        log_emission = scipy.stats.t.logpdf(y[:, None], nu, 0.0, scale[None, :] * np.sqrt((nu - 2) / nu))
    log_emission = np.where(np.isnan(y)[:, None], 0.0, log_emission)
    plain_kernel = _normal_pdf(grid[None, :], (mu + phi * (grid - mu))[:, None], sigma) * step
    kernel = plain_kernel
    pred = _normal_pdf(grid, mu, sd0) * step
    filtered = pred
    total = 0.0
    for t in range(len(y)):
        if t > 0:
            if rho is not None and np.isnan(y[t - 1]):
                kernel = plain_kernel
            elif rho is not None:
                loc = mu + phi * (grid - mu) + sigma * rho * y[t - 1] * np.exp(-grid / 2.0)
                kernel = _normal_pdf(grid[None, :], loc[:, None], sigma * np.sqrt(1.0 - rho**2)) * step
            pred = filtered @ kernel
        joint = pred * np.exp(log_emission[t])
        norm = joint.sum()
        total += np.log(norm)
        filtered = joint / norm
    return total


CASES = {
    "normal-persistent": (bayesvol.models.SV(), {"mu": -1.0, "phi": 0.95, "sigma": 0.25}),
    "normal-rough": (bayesvol.models.SV(), {"mu": 0.5, "phi": 0.8, "sigma": 0.5}),
    "t-errors": (bayesvol.models.SV(errors="t"), {"mu": -0.5, "phi": 0.97, "sigma": 0.15, "nu": 6.0}),
    "leverage": (bayesvol.models.SV(leverage=True), {"mu": -1.0, "phi": 0.95, "sigma": 0.3, "rho": -0.6}),
}


@pytest.fixture(scope="module")
def sv_cases():
    out = {}
    for i, (name, (model, params)) in enumerate(CASES.items()):
        y = np.asarray(bayesvol.simulate(model, params, NUM_STEPS, seed=10 + i).y)
        out[name] = (model, params, y, quadrature_loglik(y, **params))
    return out


def test_quadrature_reference_is_converged(sv_cases):
    model, params, y, exact = sv_cases["t-errors"]
    finer = quadrature_loglik(y, **params, num_points=1200, width=9.0)
    assert abs(finer - exact) < 1e-6


@pytest.mark.parametrize("name", list(CASES))
def test_particle_filters_and_eis_match_quadrature(sv_cases, name):
    model, params, y, exact = sv_cases[name]
    reps = 40

    @jax.jit
    def run(keys):
        def one(key):
            boot = particle_filter(model, params, y, key, 500).log_likelihood
            aux = particle_filter(model, params, y, key, 500, proposal="auxiliary").log_likelihood
            return boot, aux
        return jax.vmap(one)(keys)

    for values in run(jax.random.split(jax.random.PRNGKey(0), reps)):
        values = np.asarray(values)
        ratios = np.exp(values - exact)
        # Unbiasedness of exp(estimate): the mean ratio is 1 within 4 standard errors (MC error of the mean).
        assert abs(ratios.mean() - 1.0) < 4.0 * ratios.std(ddof=1) / np.sqrt(reps), (ratios.mean(), ratios.std())
    eis = efficient_importance_sampling(model, params, y, key=1, num_draws=64)
    assert float(eis.monte_carlo_sd) < 0.05
    assert abs(float(eis.log_likelihood) - exact) < 0.05
    np.testing.assert_allclose(float(eis.pointwise_log_likelihood.sum()), float(eis.log_likelihood))


def test_auxiliary_proposal_has_bounded_weights_and_less_noise(sv_cases):
    model, params, y, exact = sv_cases["normal-rough"]
    keys = jax.random.split(jax.random.PRNGKey(2), 40)
    boot = jax.vmap(lambda k: particle_filter(model, params, y, k, 200).log_likelihood)(keys)
    aux = jax.vmap(lambda k: particle_filter(model, params, y, k, 200, proposal="auxiliary").log_likelihood)(keys)
    # The adapted proposal reduces the Monte Carlo variance (here by more than half, a wide margin over the
    # sampling error of two 40-draw variance estimates).
    assert np.var(np.asarray(aux)) < 0.5 * np.var(np.asarray(boot))


def test_eis_monte_carlo_sd_matches_replications(sv_cases):
    model, params, y, exact = sv_cases["normal-persistent"]
    keys = jax.random.split(jax.random.PRNGKey(3), 30)
    values = np.asarray(jax.jit(jax.vmap(
        lambda k: efficient_importance_sampling(model, params, y, k, 32).log_likelihood))(keys))
    reported = float(efficient_importance_sampling(model, params, y, 0, 32).monte_carlo_sd)
    # The delta-method sd from one run agrees in order of magnitude with the spread over replications.
    assert 0.3 < reported / values.std(ddof=1) < 3.0
    assert abs(values.mean() - exact) < 4.0 * values.std(ddof=1) / np.sqrt(values.size) + 0.01


def test_agrees_with_particles_package(sv_cases):
    from particles import SMC
    from particles import state_space_models as ssm

    model, params, y, exact = sv_cases["normal-persistent"]
    reps, num = 30, 500
    theirs = []
    for seed in range(reps):
        np.random.seed(seed)  # noqa: NPY002  (particles draws from numpy's global generator)
        fk = ssm.Bootstrap(ssm=ssm.StochVol(mu=params["mu"], rho=params["phi"], sigma=params["sigma"]), data=y)
        smc = SMC(fk=fk, N=num, resampling="systematic", ESSrmin=0.5)
        smc.run()
        theirs.append(smc.logLt)
    theirs = np.array(theirs)
    ours = np.asarray(jax.vmap(lambda k: particle_filter(model, params, y, k, num, ess_threshold=0.5).log_likelihood)(
        jax.random.split(jax.random.PRNGKey(4), reps)))
    # Same algorithm, same N: equal means within 4 standard errors of the difference.
    se = np.sqrt(theirs.var(ddof=1) / reps + ours.var(ddof=1) / reps)
    assert abs(ours.mean() - theirs.mean()) < 4.0 * se
    assert abs(np.log(np.mean(np.exp(theirs - exact)))) < 0.2


def test_qml_matches_naive_kalman_loop(sv_cases):
    model, params, y, _ = sv_cases["normal-persistent"]
    mu, phi, sigma = params["mu"], params["phi"], params["sigma"]
    x = np.log(y**2)
    mean_eps, var_eps = -1.2703628454614782, np.pi**2 / 2
    a, p, total = mu, sigma**2 / (1 - phi**2), 0.0
    for t, x_t in enumerate(x):
        if t > 0:
            a, p = mu + phi * (a - mu), phi**2 * p + sigma**2
        f = p + var_eps
        v = x_t - a - mean_eps
        total += scipy.stats.norm.logpdf(v, 0.0, np.sqrt(f))
        a, p = a + p * v / f, p - p**2 / f
    assert abs(float(sv_qml_filter(model, params, y).log_likelihood) - total) < 1e-9
    assert abs(bayesvol.log_likelihood(model, params, y, method="qml") - total) < 1e-9
    # t errors: the measurement-error moments of log eps^2 by quadrature.
    nu = 6.0
    scale = np.sqrt((nu - 2) / nu)

    def expect(fn):  # E fn(eps) for eps = scale * t_nu, by quadrature on both half-lines
        return 2.0 * sum(scipy.integrate.quad(lambda e: fn(scale * e) * scipy.stats.t.pdf(e, nu), lo, hi)[0]
                         for lo, hi in ((0.0, 1.0), (1.0, np.inf)))

    mean_t = expect(lambda e: np.log(e**2))
    from bayesvol.filters.kalman import log_chi2_moments

    got_mean, got_var = log_chi2_moments(nu)
    assert abs(float(got_mean) - mean_t) < 1e-6
    assert abs(float(got_var) - expect(lambda e: (np.log(e**2) - mean_t) ** 2)) < 1e-5


def test_bellman_filter_matches_naive_loop(sv_cases):
    model, params, y, exact = sv_cases["normal-persistent"]
    mu, phi, sigma = params["mu"], params["phi"], params["sigma"]
    a, p = mu, sigma**2 / (1 - phi**2)
    means, total = [], 0.0
    for t, y_t in enumerate(y):
        if t > 0:
            a, p = mu + phi * (a - mu), phi**2 * p + sigma**2

        def negative(h, a=a, p=p, y_t=y_t):
            return -(scipy.stats.norm.logpdf(y_t, 0.0, np.exp(h / 2)) - 0.5 * (h - a) ** 2 / p)

        h = scipy.optimize.minimize_scalar(negative, bounds=(a - 20, a + 20), method="bounded",
                                           options={"xatol": 1e-12}).x
        info = 1.0 / p + 0.5 * y_t**2 * np.exp(-h)
        total += scipy.stats.norm.logpdf(y_t, 0.0, np.exp(h / 2)) - 0.5 * (h - a) ** 2 / p - 0.5 * np.log(p * info)
        a, p = h, 1.0 / info
        means.append(h)
    out = bellman_filter(model, params, y)
    np.testing.assert_allclose(np.asarray(out.filtered_mean[:, 0]), means, atol=1e-6)
    assert abs(float(out.log_likelihood) - total) < 1e-6
    # An approximation: close to, not equal to, the exact value.
    assert abs(float(out.log_likelihood) - exact) < 0.05 * abs(exact)


def test_vmap_over_datasets(sv_cases):
    model, params, y, _ = sv_cases["normal-persistent"]
    other = sv_cases["normal-rough"][2]
    data = jnp.stack([jnp.asarray(y), jnp.asarray(other)])
    batched = jax.vmap(lambda d: particle_filter(model, params, d, 3, 200).pointwise_log_likelihood)(data)
    for i in range(2):
        single = particle_filter(model, params, data[i], 3, 200).pointwise_log_likelihood
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(single), rtol=1e-9)


def test_clear_errors(sv_cases):
    model, params, y, _ = sv_cases["normal-persistent"]
    bad = y.copy()
    bad[3] = np.inf
    with pytest.raises(ValueError, match="inf"):
        particle_filter(model, params, bad)
    with pytest.raises(ValueError, match="num_particles"):
        particle_filter(model, params, y, num_particles=0)
    with pytest.raises(ValueError, match="proposal"):
        particle_filter(model, params, y, proposal="optimal")
    with pytest.raises(ValueError, match="ess_threshold"):
        particle_filter(model, params, y, ess_threshold=1.5)
    with pytest.raises(ValueError, match="outside its support"):
        particle_filter(model, {"mu": 0.0, "phi": 1.2, "sigma": 0.2}, y)
    with pytest.raises(ValueError, match="missing"):
        efficient_importance_sampling(model, {"mu": 0.0, "phi": 0.9}, y)
    with pytest.raises(ValueError, match="num_draws"):
        efficient_importance_sampling(model, params, y, num_draws=7)
    with pytest.raises(ValueError, match="univariate"):
        efficient_importance_sampling(model, params, np.ones((10, 2)))
    with pytest.raises(ValueError, match="num_newton_steps"):
        bellman_filter(model, params, y, num_newton_steps=0)
    with pytest.raises(ValueError, match="leverage"):
        sv_qml_filter(bayesvol.models.SV(leverage=True), {**params, "rho": 0.0}, y)
    with pytest.raises(ValueError, match="not available"):
        bayesvol.log_likelihood(model, params, y, method="exact")
    with pytest.raises(ValueError, match="key"):
        particle_filter(model, params, y, key="seed")


@pytest.mark.parametrize("method", ["pf", "eis", "bellman", "qml"])
def test_no_nan_at_parameter_boundaries(sv_cases, method):
    model, _, y, _ = sv_cases["normal-persistent"]
    y = y.copy()
    y[5] = 0.0  # an exact zero return
    fn = {"pf": lambda p: particle_filter(model, p, y, 0, 100, resampling="smooth", ess_threshold=1.0),
          "eis": lambda p: efficient_importance_sampling(model, p, y, 0, 8),
          "bellman": lambda p: bellman_filter(model, p, y),
          "qml": lambda p: sv_qml_filter(model, p, y)}[method]

    def loglik(p):
        return fn(p).log_likelihood

    for params in ({"mu": -1.0, "phi": 0.99999, "sigma": 0.2}, {"mu": -1.0, "phi": 0.9, "sigma": 1e-5},
                   {"mu": 8.0, "phi": -0.999, "sigma": 3.0}, {"mu": -12.0, "phi": 0.0, "sigma": 0.1}):
        params = {k: jnp.asarray(v) for k, v in params.items()}
        value, grad = jax.value_and_grad(loglik)(params)
        assert np.isfinite(float(value)) or float(value) == -np.inf, (params, value)
        assert all(not np.any(np.isnan(np.asarray(g))) for g in grad.values()), (params, grad)


def test_systematic_resampling_counts():
    weights = np.array([0.05, 0.3, 0.0, 0.15, 0.5])
    log_w = jnp.log(jnp.asarray(weights))
    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    idx = np.asarray(jax.vmap(lambda k: systematic_resample(k, log_w, 10))(keys))
    counts = np.stack([np.bincount(row, minlength=5) for row in idx])
    # Systematic resampling gives each particle floor(M w) or ceil(M w) copies, and M w on average.
    assert np.all(counts >= np.floor(10 * weights)[None] - 1e-9)
    assert np.all(counts <= np.ceil(10 * weights)[None] + 1e-9)
    np.testing.assert_allclose(counts.mean(axis=0), 10 * weights, atol=4 * 0.5 / np.sqrt(2000))


def test_weights_helpers_and_smooth_resampling():
    raw = jnp.array([0.0, 1.0, -jnp.inf, 2.0])
    log_w, log_total = normalise_log_weights(raw)
    np.testing.assert_allclose(float(log_total), np.log(1 + np.e + np.e**2))
    w = np.exp(np.asarray(log_w))
    np.testing.assert_allclose(float(effective_sample_size(log_w)), 1.0 / np.sum(w**2))
    zero, total = normalise_log_weights(jnp.full(3, -jnp.inf))
    assert float(total) == -np.inf and np.allclose(np.exp(np.asarray(zero)), 1 / 3)
    # Smooth resampling is continuous in the particles and reproduces the weighted mean to O(1/N).
    x = jax.random.normal(jax.random.PRNGKey(1), (1000,))
    log_w = normalise_log_weights(-0.5 * (x - 1.0) ** 2)[0]
    key = jax.random.PRNGKey(2)
    new = smooth_resample(key, x, log_w)
    assert abs(float(new.mean()) - float(jnp.exp(log_w) @ x)) < 0.01
    shifted = smooth_resample(key, x + 1e-7, log_w)
    assert float(jnp.max(jnp.abs(shifted - new))) < 1e-5
