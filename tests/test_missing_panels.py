"""Missing returns (NaN) in the panel models: the likelihood of a partly observed row is the marginal density of
its observed assets, a fully missing row is a pure prediction step; each rule against an independent loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesvol
from bayesvol.models import DCC
from bayesvol.models import _panel_gaps as gaps
from bayesvol.models._base import as_params

# --- DCC -------------------------------------------------------------------------------------------------

DCC_PARAMS = {"omega": [0.05, 0.1, 0.08], "alpha": [0.06, 0.08, 0.05], "beta": [0.9, 0.85, 0.9],
              "dcc_a": 0.05, "dcc_b": 0.9}
START_VARIANCE = 1.3


def _panel(num_timesteps=60):
    rng = np.random.default_rng(3)
    return rng.standard_normal((num_timesteps, 3)) @ np.array([[1.0, 0.4, 0.2], [0.0, 0.9, 0.3], [0.0, 0.0, 0.8]])


def _with_gaps(y):
    y = y.copy()
    y[[4, 9, 10, 30], 1] = np.nan          # one asset missing on some days
    y[[15, 40], 0] = np.nan
    y[[22, 23, 50], :] = np.nan            # fully missing rows
    return y


def _dcc_loop(params, y, dist, nu=None):
    """Naive DCC log-likelihood with missing values: per-asset GARCH with the conditional-expectation step,
    pairwise target, Q updated with E[u u' | past, observed entries] (computed with deleted rows and columns),
    the observed assets' marginal density from scipy."""
    T, k = y.shape
    omega, alpha, beta = (np.asarray(params[n], dtype=float) for n in ("omega", "alpha", "beta"))
    a, b = params["dcc_a"], params["dcc_b"]
    observed = ~np.isnan(y)
    variance = np.empty((T, k))
    s2 = omega + (alpha + beta) * START_VARIANCE       # a pre-sample variance START_VARIANCE
    for t in range(T):
        variance[t] = s2
        for i in range(k):
            shock = y[t, i] ** 2 if observed[t, i] else s2[i]
            s2[i] = omega[i] + alpha[i] * shock + beta[i] * s2[i]
    u = y / np.sqrt(variance)
    q_bar = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            both = observed[:, i] & observed[:, j]
            q_bar[i, j] = np.mean(u[both, i] * u[both, j])
    q = q_bar.copy()
    total = 0.0
    for t in range(T):
        d = np.sqrt(np.diag(q))
        r = q / np.outer(d, d)
        o = observed[t]
        m = ~o
        if o.any():
            h = r[np.ix_(o, o)] * np.outer(np.sqrt(variance[t, o]), np.sqrt(variance[t, o]))
            if dist == "normal":
                total += stats.multivariate_normal(np.zeros(o.sum()), h).logpdf(y[t, o])
            else:
                total += stats.multivariate_t(np.zeros(o.sum()), h * (nu - 2) / nu, df=nu).logpdf(y[t, o])
        expected = np.empty((k, k))
        u_o = u[t, o]
        r_oo_inv = np.linalg.inv(r[np.ix_(o, o)]) if o.any() else np.zeros((0, 0))
        u_hat = np.empty(k)
        u_hat[o] = u_o
        u_hat[m] = r[np.ix_(m, o)] @ r_oo_inv @ u_o
        schur = r[np.ix_(m, m)] - r[np.ix_(m, o)] @ r_oo_inv @ r[np.ix_(o, m)]
        if dist == "t":
            c = (nu - 2) / nu
            delta = u_o @ r_oo_inv @ u_o / c
            schur = schur * (nu + delta) / (nu + o.sum() - 2) * c
        expected = np.outer(u_hat, u_hat)
        expected[np.ix_(m, m)] += schur
        q = (1 - a - b) * q_bar + a * expected + b * q
    return total


@pytest.mark.parametrize("dist", ["normal", "t"])
def test_dcc_loglik_with_gaps_matches_loop(dist):
    model = DCC(dist=dist, variance_start=START_VARIANCE)
    params = dict(DCC_PARAMS, nu=6.0) if dist == "t" else DCC_PARAMS
    y = _with_gaps(_panel())
    expected = _dcc_loop(params, y, dist, params.get("nu"))
    assert float(bayesvol.log_likelihood(model, params, y)) == pytest.approx(expected, rel=1e-11, abs=1e-9)


def test_dcc_fully_missing_row_is_a_prediction_step():
    model = DCC(variance_start=START_VARIANCE)
    params = as_params(model, DCC_PARAMS)
    y = _with_gaps(_panel())
    states, _ = model.filter_states(params, jnp.asarray(y))
    for t in (22, 23, 50):
        state_t = jax.tree.map(lambda v, t=t: v[t], states)
        step = model.update_missing(params, state_t)
        np.testing.assert_allclose(states.variance[t + 1], step.variance, rtol=1e-13)
        np.testing.assert_allclose(states.q[t + 1], step.q, rtol=1e-13)
    terms = model.pointwise_loglik(params, jnp.asarray(y))
    assert np.all(np.asarray(terms)[[22, 23, 50]] == 0.0)


def test_dcc_complete_data_unchanged():
    # Values of the code before missing values were supported (same data and parameters).
    y = _panel()
    assert float(bayesvol.log_likelihood(DCC(), DCC_PARAMS, y)) == pytest.approx(-245.23110246344714, rel=1e-14)
    t_params = dict(DCC_PARAMS, nu=7.0)
    assert float(bayesvol.log_likelihood(DCC(dist="t"), t_params, y)) == pytest.approx(-246.3156867488572,
                                                                                        rel=1e-14)
    assert DCC().forecast_covariance(DCC_PARAMS, y)[0, 1] == pytest.approx(0.27929096982359886, rel=1e-13)
    # A traced y (unknown completeness) takes the gap-aware path: the same numbers up to rounding.
    model = DCC()
    params = as_params(model, DCC_PARAMS)
    traced = jax.jit(lambda v: jnp.sum(model.pointwise_loglik(params, v)))(jnp.asarray(y))
    assert float(traced) == pytest.approx(-245.23110246344714, rel=1e-12)


@pytest.mark.slow
def test_dcc_two_step_with_gaps_runs_on_the_observed_values():
    y = _with_gaps(_panel(120))
    result = bayesvol.fit(DCC(), y, method="two_step", maxiter=200)
    assert np.isfinite(result.loglik)
    assert np.all(np.isfinite(result.q_bar))
    full = {n: np.asarray(v) for n, v in result.params.items()}
    assert result.loglik == pytest.approx(float(bayesvol.log_likelihood(DCC(), full, y)), rel=1e-12)


def test_dcc_refuses_an_all_missing_asset_and_inf():
    y = _panel()
    y[:, 2] = np.nan
    with pytest.raises(ValueError, match="column 2 of y is missing \\(NaN\\) on every row"):
        bayesvol.log_likelihood(DCC(), DCC_PARAMS, y)
    y = _panel()
    y[5, 1] = np.inf
    with pytest.raises(ValueError, match="inf at row 5, column 1"):
        bayesvol.log_likelihood(DCC(), DCC_PARAMS, y)
    frame = pd.DataFrame(_panel(), columns=["a", "b", "c"])
    frame.loc[:29, "a"] = np.nan
    frame.loc[30:, "b"] = np.nan
    with pytest.raises(ValueError, match="columns 'a' and 'b' of y are never observed on the same row"):
        bayesvol.log_likelihood(DCC(), DCC_PARAMS, frame)


@pytest.mark.parametrize("dist", ["normal", "t"])
def test_observed_log_density_is_the_dense_marginal(dist):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4))
    cov = a @ a.T + 4 * np.eye(4)
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    u = rng.standard_normal(4)
    nu = 5.0
    for observed in ([True, False, True, True], [False, False, True, False], [True] * 4, [False] * 4):
        o = np.array(observed)
        value = float(gaps.observed_log_density(dist, nu, jnp.asarray(corr), jnp.asarray(np.where(o, u, np.nan)),
                                                jnp.asarray(o)))
        if not o.any():
            assert value == 0.0
            continue
        sub = corr[np.ix_(o, o)]
        dense = (stats.multivariate_normal(np.zeros(o.sum()), sub).logpdf(u[o]) if dist == "normal" else
                 stats.multivariate_t(np.zeros(o.sum()), sub * (nu - 2) / nu, df=nu).logpdf(u[o]))
        assert value == pytest.approx(float(dense), rel=1e-12)


# --- DFSV ------------------------------------------------------------------------------------------------

DFSV_PARAMS = {"lambda_r": np.array([[1.0], [0.8], [0.5]]), "Phi_f": np.array([[0.3]]), "Phi_h": np.array([[0.9]]),
               "mu": np.array([-0.5]), "Q_h": np.array([[0.05]]), "sigma2": np.array([0.2, 0.3, 0.4])}


def _dfsv_panel(num_timesteps=40):
    y = bayesvol.simulate(bayesvol.models.DFSV(), DFSV_PARAMS, num_timesteps=num_timesteps, seed=2).y.copy()
    y[[3, 7, 8, 25], 2] = np.nan           # one asset missing on some days
    y[[12, 30], :] = np.nan                # fully missing rows
    return y


def _dense_gaussian_loglik(params, y):
    """log N(y_obs; 0, Cov(y_obs)) for the linear-Gaussian factor model with constant factor variance exp(mu):
    every observed entry of the panel stacked, the missing ones deleted."""
    T, n = y.shape
    lam, phi = params["lambda_r"][:, 0], params["Phi_f"][0, 0]
    factor_var = np.exp(params["mu"][0])
    lags = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    f_cov = factor_var / (1 - phi**2) * phi**lags
    cov = np.kron(f_cov, np.outer(lam, lam)) + np.kron(np.eye(T), np.diag(params["sigma2"]))
    flat = y.reshape(-1)
    o = ~np.isnan(flat)
    return stats.multivariate_normal(np.zeros(o.sum()), cov[np.ix_(o, o)]).logpdf(flat[o])


def test_dfsv_kalman_on_observed_rows_is_the_dense_marginal():
    from bayesvol.models import _dfsv_kalman as kalman
    y = _dfsv_panel()
    h = np.full((y.shape[0], 1), DFSV_PARAMS["mu"][0])
    out = kalman.filter_factors(jnp.asarray(DFSV_PARAMS["lambda_r"]), jnp.asarray(DFSV_PARAMS["Phi_f"]),
                                jnp.asarray(h), jnp.asarray(DFSV_PARAMS["sigma2"]), jnp.asarray(y))
    assert float(out.log_likelihood) == pytest.approx(_dense_gaussian_loglik(DFSV_PARAMS, y), rel=1e-11)
    for t in (12, 30):                     # a fully missing row: filtered = predicted, no likelihood term
        assert float(out.pointwise_log_likelihood[t]) == 0.0
        np.testing.assert_allclose(out.filtered_mean[t], out.predicted_mean[t], rtol=1e-14)
        np.testing.assert_allclose(out.filtered_cov[t], out.predicted_cov[t], rtol=1e-14)


@pytest.mark.parametrize("method", ["bellman", "pf"])
def test_dfsv_filters_with_gaps_near_the_linear_gaussian_case(method):
    # Q_h tiny: the log-variances stay at mu (stationary sd 2e-7), so both filters reduce to the Kalman
    # filter of the linear-Gaussian model: the particle filter's error is about that sd times sqrt(T / M)
    # (T = 40 steps, M = 50 particles, unit sensitivity of each term to h), the Bellman filter's O(Q_h).
    params = dict(DFSV_PARAMS, Phi_h=np.array([[0.5]]), Q_h=np.array([[3e-14]]))
    y = _dfsv_panel()
    expected = _dense_gaussian_loglik(params, y)
    options = {"num_particles": 50} if method == "pf" else {}
    value = bayesvol.log_likelihood(bayesvol.models.DFSV(), params, y, method=method, **options)
    assert value == pytest.approx(expected, abs=1e-6)


def test_dfsv_bellman_fully_missing_row_is_a_prediction_step():
    from bayesvol.filters.dfsv_methods import _bellman_jit, filter_states
    y = _dfsv_panel()
    states = filter_states(bayesvol.models.DFSV(), DFSV_PARAMS, y, smooth=False)
    model = bayesvol.models.DFSV().bind_data(y)
    assert model.has_missing
    out = _bellman_jit(model, model.check_parameters(as_params(model, DFSV_PARAMS)), jnp.asarray(y), 8)
    for t in (12, 30):
        assert float(out.pointwise_log_likelihood[t]) == pytest.approx(0.0, abs=1e-12)
        np.testing.assert_allclose(out.filtered_mean[t], out.predicted_mean[t], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(states.pointwise_log_likelihood, out.pointwise_log_likelihood, rtol=1e-12)


def test_dfsv_complete_data_unchanged():
    # Values of the code before missing values were supported (same data and parameters).
    y = bayesvol.simulate(bayesvol.models.DFSV(), DFSV_PARAMS, num_timesteps=40, seed=2).y
    model = bayesvol.models.DFSV()
    assert bayesvol.log_likelihood(model, DFSV_PARAMS, y, method="bellman") == pytest.approx(-116.51923489587762,
                                                                                             rel=1e-13)
    assert bayesvol.log_likelihood(model, DFSV_PARAMS, y, method="pf", num_particles=200) == pytest.approx(
        -116.4708652747047, rel=1e-13)


def test_dfsv_program_masks_missing_returns_per_element():
    from numpyro.handlers import seed, substitute, trace
    model = bayesvol.models.DFSV(marginalize_factors=False)
    y = _dfsv_panel()
    values = {"h_std": jnp.zeros((40, 1)), "f_std": jnp.ones((40, 1))}
    tr = trace(substitute(seed(model.program, 0), values)).get_trace(jnp.asarray(y))
    site = tr["y"]
    observed = ~np.isnan(y)
    terms = np.asarray(site["fn"].log_prob(site["value"]))
    loc = np.asarray(tr["f"]["value"]) @ np.asarray(tr["lambda_r"]["value"]).T
    scale = np.sqrt(np.asarray(tr["sigma2"]["value"]))
    expected = np.where(observed, stats.norm(loc, scale).logpdf(np.where(observed, y, 0.0)), 0.0).sum(-1)
    np.testing.assert_allclose(terms, expected, rtol=1e-12)


def test_dfsv_refuses_an_all_missing_asset():
    y = _dfsv_panel()
    y[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 'asset1' of y is missing \\(NaN\\) on every row"):
        bayesvol.log_likelihood(bayesvol.models.DFSV(), DFSV_PARAMS, y, method="bellman")
