"""The result surface: conditional volatility, residuals and forecasts against arch, residual tests against
statsmodels, news impact against closed forms, and plot_volatility for every family."""

from __future__ import annotations

import math
import warnings

import arviz_base
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import bayesvol
from bayesvol.inference.conditional import conditional_moments, posterior_volatility
from bayesvol.inference.residuals import arch_lm, ljung_box, news_impact, residual_diagnostics
from bayesvol.inference.results import MLEResult
from bayesvol.models import DCC, DFSV, EGARCH, GARCH, IGGARCH, SV, WishartSV

arch = pytest.importorskip("arch")

PARAMS = {"mu": 0.03, "omega": 0.02, "alpha": 0.06, "gamma": 0.07, "beta": 0.88, "nu": 6.5}


def at(model, params, y) -> MLEResult:
    """A result at fixed parameters (no optimisation): the surface depends on the parameters and data only."""
    model = model.bind_data(y)
    data = model.validate_data(y)
    nan = {n: np.full(np.shape(v), np.nan) for n, v in params.items()}
    labels = [f"{n}{list(i) if i else ''}" for n in model.param_names for i in np.ndindex(np.shape(params[n]))]
    return MLEResult(labels=labels, model=model, method="exact", params=params, se=nan, robust_se=nan,
                     cov=np.empty((0, 0)), robust_cov=np.empty((0, 0)), loglik=float("nan"),
                     nobs=len(data.values), converged=True, message="fixed", data_index=data.index,
                     data_shape=np.shape(data.values), data=np.asarray(data.values))


@pytest.mark.parametrize(("vol", "dist"), [("garch", "normal"), ("gjr", "t")])
def test_volatility_residuals_and_forecast_equal_arch(gbpusd, vol, dist):
    model = GARCH(vol=vol, dist=dist)
    params = {n: PARAMS[n] for n in model.param_names}
    ours = at(model, params, gbpusd)
    theirs = arch.arch_model(gbpusd, mean="Constant", vol="GARCH", p=1, o=int(vol == "gjr"), q=1,
                             dist="normal" if dist == "normal" else "studentst", rescale=False)
    fixed = theirs.fix([params[n] for n in model.param_names])
    for name in ("conditional_volatility", "resid", "std_resid"):
        got = getattr(ours, name)
        assert isinstance(got, pd.Series) and got.index.equals(gbpusd.index.rename("time")), name
        np.testing.assert_allclose(got.to_numpy(), np.asarray(getattr(fixed, name)), rtol=1e-6, err_msg=name)
    horizon = 7
    ours_fc = ours.forecast(horizon, levels=None).variance["mean"].to_numpy()
    arch_fc = fixed.forecast(horizon=horizon, reindex=False).variance.to_numpy()[-1]
    np.testing.assert_allclose(ours_fc, arch_fc, rtol=1e-6)


def test_fit_keeps_its_data_and_the_surface_is_there(gbpusd):
    result = bayesvol.fit(GARCH(), gbpusd)
    np.testing.assert_array_equal(result.data, gbpusd.to_numpy())
    expected = np.sqrt(conditional_moments(result.model, result.params, gbpusd).variance)
    np.testing.assert_allclose(bayesvol.conditional_volatility(result).to_numpy(), expected, rtol=1e-12)
    text = result.summary()
    assert "AIC" in text and "Residual checks (10 lags" in text and "ARCH-LM" in text
    table = result.diagnostics_table(lags=5)
    assert list(table.index) == ["Ljung-Box z", "Ljung-Box z^2", "ARCH-LM"] and (table["df"] == 5).all()
    fig = result.plot()
    assert len(fig.axes) == 2
    ax = bayesvol.plots.plot_volatility(result)
    assert len(ax.figure.axes) == 1 and len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[1].get_ydata(), expected)
    plt.close("all")


def test_data_free_result_says_what_to_do():
    result = at(GARCH(), {n: PARAMS[n] for n in GARCH().param_names}, np.random.default_rng(0).standard_normal(80))
    result.data = None
    with pytest.raises(ValueError, match="holds no data.*conditional_moments"):
        _ = result.std_resid


def test_ljung_box_and_arch_lm_equal_statsmodels():
    diagnostic = pytest.importorskip("statsmodels.stats.diagnostic")
    rng = np.random.default_rng(3)
    z = rng.standard_normal(400) * np.sqrt(1.0 + 0.5 * np.sin(np.arange(400) / 20.0) ** 2)
    for lags in (1, 5, 12):
        reference = diagnostic.acorr_ljungbox(z, lags=[lags])
        stat, pvalue = ljung_box(z, lags)
        assert stat == pytest.approx(reference["lb_stat"].iloc[0], rel=1e-10)
        assert pvalue == pytest.approx(reference["lb_pvalue"].iloc[0], rel=1e-8)
        reference = diagnostic.acorr_ljungbox(z**2, lags=[lags], model_df=1 if lags > 1 else 0)
        stat, pvalue = ljung_box(z**2, lags, model_df=1 if lags > 1 else 0)
        assert (stat, pvalue) == pytest.approx((reference["lb_stat"].iloc[0], reference["lb_pvalue"].iloc[0]),
                                               rel=1e-8)
        with warnings.catch_warnings():   # statsmodels' notice about its future return type
            warnings.simplefilter("ignore", FutureWarning)
            lm, lm_pvalue, _, _ = diagnostic.het_arch(z, nlags=lags)
        assert arch_lm(z, lags) == pytest.approx((lm, lm_pvalue), rel=1e-8)
    table = residual_diagnostics(pd.DataFrame({"a": z, "b": z[::-1]}), lags=4)
    assert table.index.names == ["asset", "test"] and len(table) == 6
    assert table.loc[("a", "ARCH-LM"), "statistic"] == pytest.approx(arch_lm(z, 4)[0])


def test_residual_tests_refuse_bad_input():
    with pytest.raises(ValueError, match="lags must be an integer"):
        ljung_box(np.ones(50) + np.arange(50), lags=2.5)
    with pytest.raises(ValueError, match="non-finite"):
        arch_lm(np.r_[np.nan, np.arange(50.0)], lags=2)
    with pytest.raises(ValueError, match="model_df"):
        ljung_box(np.arange(50.0) % 7, lags=3, model_df=3)


def test_news_impact_equals_closed_forms():
    shocks = np.linspace(-3.0, 3.0, 13)
    garch = {"mu": 0.1, "omega": 0.05, "alpha": 0.08, "gamma": 0.1, "beta": 0.85}
    gjr_params = garch
    garch_params = {k: v for k, v in garch.items() if k != "gamma"}
    long_run = garch["omega"] / (1 - garch["alpha"] - garch["beta"])
    expected = garch["omega"] + garch["alpha"] * shocks**2 + garch["beta"] * long_run
    np.testing.assert_allclose(news_impact(GARCH(), garch_params, shocks), expected, rtol=1e-12)
    long_run = garch["omega"] / (1 - garch["alpha"] - 0.5 * garch["gamma"] - garch["beta"])
    expected = (garch["omega"] + (garch["alpha"] + garch["gamma"] * (shocks < 0)) * shocks**2
                + garch["beta"] * long_run)
    np.testing.assert_allclose(news_impact(GARCH(vol="gjr"), gjr_params, shocks), expected, rtol=1e-12)
    np.testing.assert_allclose(news_impact(GARCH(vol="gjr"), gjr_params, shocks, variance=2.0),
                               expected + garch["beta"] * (2.0 - long_run), rtol=1e-12)
    egarch = {"mu": 0.0, "omega": 0.01, "alpha": 0.15, "gamma": -0.06, "beta": 0.95}
    log_var = egarch["omega"] / (1 - egarch["beta"])
    z = shocks / math.exp(0.5 * log_var)
    expected = np.exp(egarch["omega"] + egarch["alpha"] * (np.abs(z) - math.sqrt(2 / math.pi))
                      + egarch["gamma"] * z + egarch["beta"] * log_var)
    np.testing.assert_allclose(news_impact(EGARCH(), egarch, shocks), expected, rtol=1e-12)


def test_news_impact_refuses_shocks_outside_the_support_and_latent_models():
    params = {"lam": 0.02, "eta": -0.25, "w": 0.01, "b": -0.19, "c": 0.054, "a": 4.9}
    model = IGGARCH()
    inside = news_impact(model, params, [-0.5, 0.0])
    assert np.all(np.isfinite(inside)) and np.all(inside > 0)
    with pytest.raises(ValueError, match="outside the support"):   # eta < 0: returns are bounded above
        news_impact(model, params, [1e3])
    with pytest.raises(ValueError, match="univariate observation-driven"):
        news_impact(SV(), {"mu": 0.0, "phi": 0.9, "sigma": 0.2}, [0.0])


def test_sv_conditional_variance_is_exact_without_persistence():
    # phi = 0: h_t ~ N(mu, sigma^2) whatever the past, so E[exp(h_t) | y_{1:t-1}] = exp(mu + sigma^2 / 2).
    y = np.random.default_rng(1).standard_normal(60)
    result = at(SV(), {"mu": -0.4, "phi": 0.0, "sigma": 0.3}, y)
    np.testing.assert_allclose(result.conditional_volatility.to_numpy() ** 2, math.exp(-0.4 + 0.045), rtol=1e-10)
    np.testing.assert_allclose(result.resid.to_numpy(), y)
    assert len(bayesvol.plots.plot_volatility(result).lines) == 3
    plt.close("all")


# --- posteriors of every family: plot_volatility from each family's posterior layout -------------------------
T, ASSETS = 30, ["EUR", "GBP", "JPY"]


def fake_posterior(model, variables, num_assets=None):
    """A posterior DataTree with the family's own dims (``site_dims``), as bayesvol.sample lays it out."""
    index = pd.bdate_range("2023-01-02", periods=T)
    y = np.random.default_rng(0).standard_normal((T,) if num_assets is None else (T, num_assets))
    dims, coords = model.site_dims(index, y)
    posterior = {name: value for name, value in variables.items()}
    return arviz_base.from_dict({"posterior": posterior, "observed_data": {"y": y}}, coords=coords, dims=dims)


def draws(rng, *shape):
    return np.exp(0.2 * rng.standard_normal((1, 8) + shape))


@pytest.mark.parametrize("family", ["sv", "garch", "egarch", "iggarch", "dcc", "wishart", "dfsv", "dfsv_cov"])
def test_plot_volatility_from_every_family_posterior(family):
    rng = np.random.default_rng(2)
    k = len(ASSETS)
    if family in ("sv", "garch", "egarch", "iggarch"):
        model = {"sv": SV(), "garch": GARCH(), "egarch": EGARCH(), "iggarch": IGGARCH()}[family]
        idata, expected = fake_posterior(model, {"vol": draws(rng, T)}), None
        panels = 1
    elif family in ("dcc", "wishart"):
        model = DCC() if family == "dcc" else WishartSV()
        vol = draws(rng, T, k)
        idata, panels = fake_posterior(model, {"vol": vol}, k), k
        expected = np.median(vol[0], axis=0)
    else:
        model = DFSV(num_factors=1)
        lam, vol, sigma2 = rng.standard_normal((1, 8, k, 1)), draws(rng, T, 1), draws(rng, k)
        variables = {"lambda_r": lam, "vol": vol, "sigma2": sigma2}
        variance = lam[:, :, None, :, 0] ** 2 * vol**2 + sigma2[:, :, None, :]
        if family == "dfsv_cov":   # store_covariance=True: the per-asset sd is read off the diagonal of cov
            variables["cov"] = variance[..., None] * np.eye(k)
        idata, panels = fake_posterior(model, variables, k), k
        expected = np.median(np.sqrt(variance[0]), axis=0)
    out = bayesvol.plots.plot_volatility(idata, hdi_prob=0.8)
    axes = np.atleast_1d(out)
    assert len(axes) == panels and len(axes[0].figure.axes) == panels
    if expected is not None:
        for j in range(k):
            np.testing.assert_allclose(axes[j].lines[1].get_ydata(), expected[:, j], rtol=1e-12)
        table = bayesvol.conditional_volatility(idata)
        assert table.shape == (T, k) and table.index.equals(pd.bdate_range("2023-01-02", periods=T).rename("time"))
    else:
        assert posterior_volatility(idata).dims == ("chain", "draw", "time")
    plt.close("all")


# --- multivariate maximum-likelihood results: their filters compile for about a minute on two cores --------
@pytest.mark.slow
def test_multivariate_results_have_per_asset_volatility():
    y = pd.DataFrame(np.random.default_rng(4).standard_normal((80, 2)), columns=["EUR", "GBP"],
                     index=pd.bdate_range("2023-01-02", periods=80))
    dcc = {"omega": [0.05, 0.03], "alpha": [0.06, 0.08], "beta": [0.90, 0.88], "dcc_a": 0.05,
           "dcc_b": 0.9}
    result = at(DCC(), dcc, y)
    covariances = DCC().filtered_covariances(dcc, y)[:-1]
    np.testing.assert_allclose(result.conditional_volatility.to_numpy(),
                               np.sqrt(np.diagonal(covariances, axis1=1, axis2=2)), rtol=1e-10)
    assert len(bayesvol.plots.plot_volatility(result)) == 2
    # DFSV without persistence: f_t ~ N(0, E[e^h]) with h ~ N(mu, Q), so Var(r_it) = l_i^2 e^{mu + Q/2} + s_i^2.
    dfsv = {"lambda_r": np.array([[1.0], [0.6]]), "Phi_f": np.array([[0.0]]), "Phi_h": np.array([[0.0]]),
            "mu": np.array([-0.3]), "Q_h": np.array([[0.2]]), "sigma2": np.array([0.3, 0.5])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = at(DFSV(), dfsv, y)
        expected = np.array([1.0, 0.36]) * math.exp(-0.3 + 0.1) + np.array([0.3, 0.5])
        np.testing.assert_allclose(result.conditional_volatility.to_numpy() ** 2, np.tile(expected, (80, 1)),
                                   rtol=1e-8)
    wishart = {"nu": 9.0, "d": 0.6, "A": np.array([[1.2, 0.3], [0.3, 0.8]])}
    result = at(WishartSV(), wishart, y)
    vol = result.conditional_volatility
    assert vol.shape == (80, 2) and list(vol.columns) == [0, 1] and np.all(vol.to_numpy() > 0)
    assert result.summary(diagnostics=True).count("ARCH-LM") == 2
    plt.close("all")
