"""DFSV model: simulation recipe, Rao-Blackwellised likelihood against dense Gaussian algebra, parameter
transforms and priors, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
import scipy.linalg
import scipy.stats
from numpyro import handlers

import bayesvol
from bayesvol.filters import LinearGaussianSSM, kalman_filter
from bayesvol.models import DFSV
from bayesvol.models import _dfsv_kalman as kalman
from bayesvol.models._dfsv_priors import (
    IdentifiedLoadings,
    ScaledLKJ,
    StationaryMatrix,
    StationaryTransform,
    stationary_from_unconstrained,
    unconstrained_from_stationary,
)
from bayesvol.models.dfsv import simulate_from_shocks


def make_params(num_assets=4, num_factors=2, idiosyncratic="constant", seed=0):
    """A valid parameter set: identified loadings, stationary VAR matrices, a correlated Q_h."""
    rng = np.random.default_rng(seed)
    k, n = num_factors, num_assets
    lam = rng.normal(0.8, 0.3, (n, k))
    lam[:k, :k] = np.tril(lam[:k, :k], -1) + np.eye(k)
    phi_f = 0.3 * np.eye(k) + 0.05 * np.tri(k, k, -1)
    phi_h = 0.9 * np.eye(k) + 0.03 * np.tri(k, k, -1)
    q_h = 0.05 * (0.5 * np.eye(k) + 0.5)
    params = {"lambda_r": lam, "Phi_f": phi_f, "Phi_h": phi_h, "mu": np.linspace(-0.5, -1.0, k), "Q_h": q_h}
    if idiosyncratic == "constant":
        params["sigma2"] = rng.uniform(0.1, 0.4, n)
    else:
        params.update(mu_id=rng.uniform(-2.0, -1.0, n), phi_id=np.full(n, 0.9), sigma_id=np.full(n, 0.2))
    return params


def naive_simulation(params, z_h, z_f, z_id, z_eps, idiosyncratic):
    """The simulation recipe step by step in plain numpy, stationary laws from scipy's Lyapunov solver."""
    lam, phi_f, phi_h, mu, q_h = (np.asarray(params[n]) for n in ("lambda_r", "Phi_f", "Phi_h", "mu", "Q_h"))
    num_timesteps, k = z_h.shape
    n = lam.shape[0]
    y, hs, fs, hids = np.zeros((num_timesteps, n)), np.zeros((num_timesteps, k)), np.zeros((num_timesteps, k)), []
    h = f = h_id = None
    for t in range(num_timesteps):
        # 1. factor log-variances
        if t == 0:
            gamma_h = scipy.linalg.solve_discrete_lyapunov(phi_h, q_h)
            h = mu + np.linalg.cholesky(gamma_h) @ z_h[0]
        else:
            h = mu + phi_h @ (h - mu) + np.linalg.cholesky(q_h) @ z_h[t]
        # 2.-3. factor shocks and the VAR(1) of the factors (f_1 from its stationary law given h_1)
        if t == 0:
            gamma_f = scipy.linalg.solve_discrete_lyapunov(phi_f, np.diag(np.exp(h)))
            f = np.linalg.cholesky(gamma_f) @ z_f[0]
        else:
            f = phi_f @ f + np.exp(h / 2) * z_f[t]
        # 4. idiosyncratic log-variances
        if idiosyncratic == "sv":
            mu_id, phi_id, sigma_id = (np.asarray(params[n]) for n in ("mu_id", "phi_id", "sigma_id"))
            if t == 0:
                h_id = mu_id + sigma_id / np.sqrt(1 - phi_id**2) * z_id[0]
            else:
                h_id = mu_id + phi_id * (h_id - mu_id) + sigma_id * z_id[t]
            var = np.exp(h_id)
            hids.append(h_id)
        else:
            var = np.asarray(params["sigma2"])
        # 5.-6. idiosyncratic noise and returns
        y[t] = lam @ f + np.sqrt(var) * z_eps[t]
        hs[t], fs[t] = h, f
    return y, hs, fs, (np.array(hids) if hids else None)


@pytest.mark.parametrize("idiosyncratic", ["constant", "sv"])
def test_simulation_follows_the_recipe_step_by_step(idiosyncratic):
    k, n, num_timesteps = 2, 4, 40
    params = make_params(n, k, idiosyncratic)
    model = DFSV(num_factors=k, idiosyncratic=idiosyncratic)
    rng = np.random.default_rng(1)
    z_h, z_f, z_id, z_eps = (rng.standard_normal((num_timesteps, d)) for d in (k, k, n, n))
    theta = bayesvol.models._base.as_params(model, params)
    got = simulate_from_shocks(model, theta, z_h, z_f, z_id, z_eps)
    want = naive_simulation(params, z_h, z_f, z_id, z_eps, idiosyncratic)
    for a, b in zip(got, want, strict=True):
        if b is None:
            assert a is None
        else:
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-10, atol=1e-10)
    sim = bayesvol.simulate(model, params, num_timesteps, seed=3)
    again = bayesvol.simulate(model, params, num_timesteps, seed=3)
    np.testing.assert_array_equal(sim.y, again.y)
    assert sim.y.shape == (num_timesteps, n) and sim.f.shape == sim.h.shape == (num_timesteps, k)
    assert (sim.h_id is None) == (idiosyncratic == "constant")


def test_simulated_moments_match_the_stationary_laws():
    # One factor, T = 20000: sample mean/variance of h and the variance of f against the closed forms.
    # Tolerances: h is AR(1) with phi = 0.9, so the standard error of its sample mean is about
    # sqrt(var_h (1 + phi) / (1 - phi) / T) = 0.016 and we allow 5 of those; variances to 10%.
    model = DFSV(num_factors=1)
    params = {"lambda_r": np.array([[1.0], [0.5]]), "Phi_f": np.array([[0.5]]), "Phi_h": np.array([[0.9]]),
              "mu": np.array([-0.5]), "Q_h": np.array([[0.05]]), "sigma2": np.array([0.2, 0.3])}
    sim = bayesvol.simulate(model, params, 20_000, seed=7)
    var_h = 0.05 / (1 - 0.81)
    assert abs(sim.h.mean() + 0.5) < 5 * np.sqrt(var_h * 19 / 20_000)
    assert abs(sim.h.var() / var_h - 1) < 0.1
    # Var f = E[exp(h)] / (1 - 0.5^2) for a stationary AR(1) with variance exp(h) shocks independent of f.
    var_f = np.exp(-0.5 + var_h / 2) / 0.75
    assert abs(sim.f.var() / var_f - 1) < 0.1
    resid = sim.y[:, 1] - 0.5 * sim.f[:, 0]
    assert abs(resid.var() / 0.3 - 1) < 0.05


# --- the Rao-Blackwellised likelihood ----------------------------------------------------------------------------
def dense_factor_law(lam, phi_f, h, idio_var):
    """Joint Gaussian law of vec(r_{1:T}) given h, built as dense matrices: f = M z, r = (I kron Lambda) f + e."""
    num_timesteps, k = h.shape
    n = lam.shape[0]
    m = np.zeros((num_timesteps * k, num_timesteps * k))
    gamma_f = scipy.linalg.solve_discrete_lyapunov(phi_f, np.diag(np.exp(h[0])))
    m[:k, :k] = np.linalg.cholesky(gamma_f)
    for t in range(1, num_timesteps):
        m[t * k:(t + 1) * k] = phi_f @ m[(t - 1) * k:t * k]
        m[t * k:(t + 1) * k, t * k:(t + 1) * k] = np.diag(np.exp(h[t] / 2))
    cov_f = m @ m.T
    load = np.kron(np.eye(num_timesteps), lam)
    idio = np.broadcast_to(idio_var, (num_timesteps, n)).ravel()
    return cov_f, load, load @ cov_f @ load.T + np.diag(idio)


@pytest.mark.parametrize("time_varying", [False, True])
def test_rao_blackwellised_likelihood_equals_dense_multivariate_normal(time_varying):
    k, n, num_timesteps = 2, 4, 12
    params = make_params(n, k)
    rng = np.random.default_rng(2)
    h = -0.5 + 0.6 * rng.standard_normal((num_timesteps, k))
    idio_var = np.exp(rng.normal(-1.0, 0.5, (num_timesteps, n))) if time_varying else params["sigma2"]
    y = rng.standard_normal((num_timesteps, n))
    lam, phi_f = params["lambda_r"], params["Phi_f"]
    out = kalman.filter_factors(jnp.asarray(lam), jnp.asarray(phi_f), jnp.asarray(h), jnp.asarray(idio_var),
                                jnp.asarray(y))
    terms = out.pointwise_log_likelihood
    cov_f, load, cov_r = dense_factor_law(lam, phi_f, h, idio_var)
    total = scipy.stats.multivariate_normal(np.zeros(cov_r.shape[0]), cov_r).logpdf(y.ravel())
    np.testing.assert_allclose(float(out.log_likelihood), total, rtol=1e-10)
    # Pointwise terms are predictive: log p(r_{1:t}) - log p(r_{1:t-1}).
    for t in (1, 5, num_timesteps - 1):
        upto = scipy.stats.multivariate_normal(np.zeros((t + 1) * n), cov_r[:(t + 1) * n, :(t + 1) * n])
        before = scipy.stats.multivariate_normal(np.zeros(t * n), cov_r[:t * n, :t * n])
        np.testing.assert_allclose(float(terms[:t + 1].sum()), upto.logpdf(y[:t + 1].ravel()), rtol=1e-10)
        np.testing.assert_allclose(float(terms[t]), upto.logpdf(y[:t + 1].ravel())
                                   - before.logpdf(y[:t].ravel()), rtol=1e-8, atol=1e-10)
    # Smoothed factors = the Gaussian conditional law of f given all returns.
    gain = cov_f @ load.T @ np.linalg.inv(cov_r)
    mean_dense = (gain @ y.ravel()).reshape(num_timesteps, k)
    cov_dense = cov_f - gain @ load @ cov_f
    mean, cov = kalman.smooth_factors(jnp.asarray(phi_f), out)
    np.testing.assert_allclose(np.asarray(mean), mean_dense, rtol=1e-8, atol=1e-10)
    for t in (0, 4, num_timesteps - 1):
        np.testing.assert_allclose(np.asarray(cov[t]), cov_dense[t * k:(t + 1) * k, t * k:(t + 1) * k],
                                   rtol=1e-8, atol=1e-10)
    # The generic covariance-form Kalman filter of the filters package agrees as well.
    noise = np.exp(h)[:, :, None] * np.eye(k)
    ssm = LinearGaussianSSM(np.zeros(k), scipy.linalg.solve_discrete_lyapunov(phi_f, np.diag(np.exp(h[0]))),
                            phi_f, np.zeros(k), noise, lam, np.zeros(n),
                            np.broadcast_to(idio_var, (num_timesteps, n))[:, :, None] * np.eye(n))
    generic = kalman_filter(ssm, y)
    np.testing.assert_allclose(np.asarray(terms), np.asarray(generic.pointwise_log_likelihood), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(out.filtered_mean), np.asarray(generic.filtered_mean), atol=1e-9)


def test_one_factor_one_asset_without_dynamics_is_sv_with_measurement_noise():
    # K = N = 1, lambda = 1, Phi_f = 0: r_t | h_t ~ N(0, exp(h_t) + sigma2), independent over t given h, i.e.
    # the SV model with additive Gaussian noise; sigma2 -> 0 gives the SV model itself. (The information-form
    # update loses about log10(var_f / sigma2) digits to cancellation, hence 1e-6 rather than smaller.)
    rng = np.random.default_rng(4)
    h = rng.normal(-0.5, 0.7, (30, 1))
    y = rng.standard_normal((30, 1))
    for sigma2 in (0.3, 1e-6):
        out = kalman.filter_factors(jnp.ones((1, 1)), jnp.zeros((1, 1)), jnp.asarray(h), jnp.array([sigma2]),
                                    jnp.asarray(y))
        want = scipy.stats.norm(0.0, np.sqrt(np.exp(h[:, 0]) + sigma2)).logpdf(y[:, 0])
        np.testing.assert_allclose(np.asarray(out.pointwise_log_likelihood), want, rtol=1e-8)
    # The model's emission given the full state matches too (f_t integrated by hand is the SV density).
    model = DFSV(num_factors=1)
    params = bayesvol.models._base.as_params(model, {
        "lambda_r": [[1.0]], "Phi_f": [[0.0]], "Phi_h": [[0.95]], "mu": [-0.5], "Q_h": [[0.04]], "sigma2": [0.3]})
    state = jnp.array([0.7, -0.2])
    np.testing.assert_allclose(float(model.emission(params, state).log_prob(jnp.array([1.1]))),
                               scipy.stats.norm(0.7, np.sqrt(0.3)).logpdf(1.1), rtol=1e-12)


def test_program_adds_the_kalman_likelihood_given_the_log_variances():
    # The marginalised program's y_marginal factor at given sites equals the dense Gaussian log density.
    k, n, num_timesteps = 2, 3, 10
    model = DFSV(num_factors=k)
    rng = np.random.default_rng(5)
    y = rng.standard_normal((num_timesteps, n))
    seeded = handlers.seed(model.program, jax.random.PRNGKey(0))
    trace = handlers.trace(seeded).get_trace(jnp.asarray(y))
    lam, phi_f, h = (np.asarray(trace[s]["value"]) for s in ("lambda_r", "Phi_f", "h"))
    sigma2 = np.asarray(trace["sigma2"]["value"])
    assert np.all(np.abs(np.linalg.eigvals(phi_f)) < 1) and np.allclose(np.triu(lam[:k], 1), 0)
    cov_r = dense_factor_law(lam, phi_f, h, sigma2)[2]
    want = scipy.stats.multivariate_normal(np.zeros(cov_r.shape[0]), cov_r).logpdf(y.ravel())
    np.testing.assert_allclose(float(trace["y_marginal"]["fn"].log_prob(0.0)), want, rtol=1e-9)


def test_conditional_covariance_output():
    model = DFSV(num_factors=2, store_covariance=True)
    y = np.random.default_rng(6).standard_normal((25, 3))
    trace = handlers.trace(handlers.seed(model.program, jax.random.PRNGKey(1))).get_trace(jnp.asarray(y))
    lam, h, sigma2 = (np.asarray(trace[s]["value"]) for s in ("lambda_r", "h", "sigma2"))
    cov, corr = np.asarray(trace["cov"]["value"]), np.asarray(trace["corr"]["value"])
    t = 7
    want = lam @ np.diag(np.exp(h[t])) @ lam.T + np.diag(sigma2)
    np.testing.assert_allclose(cov[t], want, rtol=1e-12)
    sd = np.sqrt(np.diag(want))
    np.testing.assert_allclose(corr[t], want / np.outer(sd, sd), rtol=1e-12)


# --- transforms and priors ---------------------------------------------------------------------------------------
def test_stationary_transform_is_a_bijection_onto_stationary_matrices():
    rng = np.random.default_rng(7)
    for k in (1, 2, 3):
        a = 2.0 * rng.standard_normal((50, k, k))
        phi = np.asarray(stationary_from_unconstrained(jnp.asarray(a)))
        assert np.all(np.abs(np.linalg.eigvals(phi)) < 1)
        np.testing.assert_allclose(np.asarray(unconstrained_from_stationary(jnp.asarray(phi))), a, atol=1e-8)
    # Scalar case in closed form, and the log-Jacobian against finite differences (k = 1: da/dphi).
    np.testing.assert_allclose(float(stationary_from_unconstrained(jnp.array([[2.0]]))[0, 0]), 2 / np.sqrt(5))
    x = jnp.array([[0.7]])
    ladj = float(StationaryTransform().log_abs_det_jacobian(x, None))
    np.testing.assert_allclose(ladj, np.log((1 + 0.49) ** -1.5), rtol=1e-10)
    # No NaN gradient where the unconstrained matrix is large (near the unit circle).
    grad = jax.grad(lambda a: stationary_from_unconstrained(a).sum())(jnp.full((2, 2), 50.0))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_scaled_lkj_density_by_change_of_variables():
    # p(Q) from (s_1, s_2, omega) -> (Q_11, Q_22, Q_12): the Jacobian determinant computed by autodiff here.
    prior = ScaledLKJ(2, dist.HalfNormal(1.0), 2.0)

    def to_q(v):
        s1, s2, w = v
        return jnp.array([s1**2, s2**2, s1 * s2 * w])

    v = jnp.array([0.7, 1.3, -0.4])
    jac = jax.jacfwd(to_q)(v)
    corr = jnp.array([[1.0, v[2]], [v[2], 1.0]])
    log_p = (dist.HalfNormal(1.0).log_prob(v[:2]).sum() + dist.LKJ(2, 2.0).log_prob(corr)
             - jnp.log(jnp.abs(jnp.linalg.det(jac))))
    q = jnp.array([[v[0] ** 2, v[0] * v[1] * v[2]], [v[0] * v[1] * v[2], v[1] ** 2]])
    np.testing.assert_allclose(float(prior.log_prob(q)), float(log_p), rtol=1e-10)
    # K = 1: p(q) = p_s(sqrt q) / (2 sqrt q).
    np.testing.assert_allclose(float(ScaledLKJ(1).log_prob(jnp.array([[0.25]]))),
                               float(dist.HalfNormal(1.0).log_prob(0.5)) - np.log(2 * 0.5), rtol=1e-12)
    draws = prior.sample(jax.random.PRNGKey(0), (200,))
    assert np.all(np.linalg.eigvalsh(np.asarray(draws)) > 0)


def test_structured_priors_sample_in_their_support():
    key = jax.random.PRNGKey(3)
    loadings = IdentifiedLoadings(2, num_assets=5).sample(key, (10,))
    assert loadings.shape == (10, 5, 2)
    np.testing.assert_array_equal(np.asarray(loadings[:, :2, :2]), np.broadcast_to(np.eye(2), (10, 2, 2))
                                  + np.asarray(jnp.tril(loadings[:, :2, :2], -1)))
    phi = StationaryMatrix(3).sample(key, (20,))
    assert np.all(np.abs(np.linalg.eigvals(np.asarray(phi))) < 1)


# --- input checks ------------------------------------------------------------------------------------------------
def panel(num_timesteps=60, num_assets=3, seed=8):
    return np.random.default_rng(seed).standard_normal((num_timesteps, num_assets))


@pytest.mark.parametrize("mutate, message", [
    (lambda y: np.where(np.arange(y.size).reshape(y.shape) % 3 == 1, np.nan, y), "'asset1' of y is missing"),
    (lambda y: np.where(np.arange(y.size).reshape(y.shape) == 7, np.inf, y), "inf at row"),
    (lambda y: y[:10], "at least"),
    (lambda y: y[:, :1], "not identified"),
    (lambda y: np.column_stack([y, y[:, 0] - y[:, 1]]), "linearly dependent"),
    (lambda y: np.column_stack([y, np.ones(len(y))]), "constant"),
    (lambda y: y[:, :, None], "T x N panel"),
    (lambda y: np.array([["a"] * 3] * 30), "numeric"),
])
def test_bad_data_get_clear_errors(mutate, message):
    with pytest.raises(ValueError, match=message):
        DFSV(num_factors=2).validate_data(mutate(panel()))


def test_bad_model_settings_and_parameters_get_clear_errors():
    with pytest.raises(ValueError, match="positive integer"):
        DFSV(num_factors=0)
    with pytest.raises(ValueError, match="'constant' or 'sv'"):
        DFSV(idiosyncratic="garch")
    with pytest.raises(ValueError, match="not identified"):
        DFSV(num_factors=3, num_assets=2)
    with pytest.raises(ValueError, match="unknown parameter"):
        DFSV(priors={"phi": dist.Normal()})
    with pytest.raises(ValueError, match="scalar distribution"):
        DFSV(priors={"sigma2": dist.Normal(jnp.zeros(3), 1.0)})
    model = DFSV(num_factors=2)
    good = make_params(4, 2)
    for name, value, message in [
        ("lambda_r", np.ones((4, 2)), "outside its support"),          # upper triangle not zero: not identified
        ("lambda_r", np.tril(np.ones((4, 2))) * 2.0, "outside its support"),  # diagonal not one
        ("Phi_f", np.diag([1.01, 0.5]), "outside its support"),          # explosive factor VAR
        ("Phi_h", np.array([[0.5, 2.0], [-2.0, 0.5]]), "outside its support"),
        ("Q_h", np.array([[1.0, 2.0], [2.0, 1.0]]), "outside its support"),  # not positive definite
        ("sigma2", -np.ones(4), "outside its support"),
        ("Phi_f", np.eye(3) * 0.5, "3x3|2x2"),
    ]:
        bad = dict(good, **{name: value})
        with pytest.raises(ValueError, match=message):
            bayesvol.simulate(model, bad, 50)
    with pytest.raises(ValueError, match="mu must have shape"):
        bayesvol.simulate(model, dict(good, mu=np.zeros(3)), 50)
    with pytest.raises(ValueError, match="4 rows but the data have 3"):
        bayesvol.log_likelihood(model, good, panel(), method="bellman")


def test_dataframe_labels_and_start_values():
    dates = pd.bdate_range("2020-01-01", periods=80)
    sim = bayesvol.simulate(DFSV(num_factors=2), make_params(4, 2), 80, seed=2)
    frame = pd.DataFrame(sim.y, index=dates, columns=["EUR", "GBP", "JPY", "CHF"])
    data = DFSV(num_factors=2).validate_data(frame)
    assert data.index.assets == ("EUR", "GBP", "JPY", "CHF") and data.index.time[0] == dates[0]
    for start in DFSV(num_factors=2).start_values(data.values):
        theta = bayesvol.models._base.as_params(DFSV(num_factors=2), start)   # inside every support
        assert theta.lambda_r.shape == (4, 2)
