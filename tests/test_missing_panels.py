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
