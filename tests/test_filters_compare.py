"""Posterior vs MLE tables and plots, predictive log-likelihoods for model comparison, leave-future-out."""

import arviz_base
import arviz_stats
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import norm

import bayesvol
from bayesvol.compare import add_predictive_log_likelihood, estimates_table, leave_future_out, plot_estimates
from bayesvol.filters import particle_filter

TRUTH = {"mu": -0.5, "phi": 0.9, "sigma": 0.3}


@pytest.fixture(scope="module")
def setup():
    model = bayesvol.models.SV()
    sim = bayesvol.simulate(model, TRUTH, 120, seed=4)
    y = pd.Series(sim.y, index=pd.bdate_range("2020-01-01", periods=120))
    rng = np.random.default_rng(0)
    # A stand-in posterior (2 chains x 6 draws) around the truth: these tests check bookkeeping, not inference.
    posterior = {"mu": rng.normal(-0.5, 0.1, (2, 6)), "phi": rng.uniform(0.85, 0.95, (2, 6)),
                 "sigma": rng.uniform(0.2, 0.4, (2, 6))}
    idata = arviz_base.from_dict({"posterior": posterior, "observed_data": {"y": y.to_numpy()}}, dims={"y": ["time"]},
                                 coords={"time": y.index.to_numpy()})
    mle = bayesvol.fit(model, y, method="qml", num_starts=1)
    return model, y, idata, mle, posterior


def test_estimates_table_matches_direct_computation(setup):
    model, y, idata, mle, posterior = setup
    table = estimates_table(idata, {"QML": mle}, hdi_prob=0.9)
    assert list(table.index) == ["mu", "phi", "sigma"]
    assert list(table.columns) == ["mean", "sd", "hdi_5%", "hdi_95%", "QML", "QML se"]
    for name in model.param_names:
        draws = posterior[name].ravel()
        assert np.isclose(table.loc[name, "mean"], draws.mean())
        assert np.isclose(table.loc[name, "sd"], draws.std(ddof=1))
        assert np.allclose(table.loc[name, ["hdi_5%", "hdi_95%"]].to_numpy(float),
                           arviz_stats.hdi(draws, prob=0.9))
        assert table.loc[name, "QML"] == mle.params[name] and table.loc[name, "QML se"] == mle.se[name]
    robust = estimates_table(mle=mle, robust=True)
    assert robust.loc["phi", "MLE (qml) se"] == mle.robust_se["phi"]
    with pytest.raises(ValueError, match="not in the posterior"):
        estimates_table(idata, var_names=["nu"])
    with pytest.raises(TypeError, match="MLEResult"):
        estimates_table(idata, mle={"a": 1.0})


def test_forest_plot_overlays_each_mle(setup):
    model, y, idata, mle, _ = setup
    plot = plot_estimates(idata, {"QML": mle, "QML again": mle}, hdi_prob=0.9)
    twig = plot.viz["twig"]
    assert list(twig.data_vars) == ["mu", "phi", "sigma"]
    # Per parameter: the posterior's HDI line and mean marker, and one interval per MLE.
    for name in twig.data_vars:
        assert list(twig[name]["model"].values) == ["posterior", "QML", "QML again"]
        assert plot.viz["point_estimate"][name].sizes["model"] == 3
    # The MLE's interval is its 90% Wald interval, the posterior's the 90% HDI.
    half = norm.ppf(0.95) * mle.se["phi"]
    line = twig["phi"].sel(model="QML").item()
    np.testing.assert_allclose(sorted(line.get_xdata()), [mle.params["phi"] - half, mle.params["phi"] + half])
    np.testing.assert_allclose(sorted(twig["phi"].sel(model="posterior").item().get_xdata()),
                               arviz_stats.hdi(idata, prob=0.9, var_names=["phi"])["phi"].values)
    plt.close("all")


def test_predictive_log_likelihood_group_and_compare(setup):
    model, y, idata, mle, posterior = setup
    out = add_predictive_log_likelihood(idata, model, y, num_particles=200, seed=3)
    values = out.log_likelihood["y"].values
    assert values.shape == (2, 6, 120)
    assert "one-step-ahead predictive" in out.log_likelihood.attrs["log_likelihood"]
    expected = particle_filter(model, {k: v[1, 2] for k, v in posterior.items()}, y.to_numpy(), 3, 200,
                               resampling="smooth", ess_threshold=1.0).pointwise_log_likelihood
    np.testing.assert_allclose(values[1, 2], np.asarray(expected), rtol=1e-9)
    assert "log_likelihood" not in idata.children  # the input is not modified
    thinned = add_predictive_log_likelihood(idata, model, y, method="bellman", thin=2)
    assert thinned.posterior["mu"].shape == (2, 3) and thinned.log_likelihood["y"].shape == (2, 3, 120)
    # PSIS needs at least 5 draws in the fitted tail (arviz-stats refuses fewer), so rank on 2 x 25 draws.
    rng = np.random.default_rng(1)
    larger = arviz_base.from_dict(
        {"posterior": {"mu": rng.normal(-0.5, 0.1, (2, 25)), "phi": rng.uniform(0.85, 0.95, (2, 25)),
                       "sigma": rng.uniform(0.2, 0.4, (2, 25))}, "observed_data": {"y": y.to_numpy()}},
        dims={"y": ["time"]}, coords={"time": y.index.to_numpy()})
    out = add_predictive_log_likelihood(larger, model, y, num_particles=200, seed=3)
    by_bellman = add_predictive_log_likelihood(larger, model, y, method="bellman")
    ranking = arviz_stats.compare({"pf": out, "bellman": by_bellman})
    assert set(ranking.index) == {"pf", "bellman"}


def test_leave_future_out(setup):
    model, y, idata, mle, posterior = setup
    by_mle = leave_future_out(mle, model, y, 20, method="bellman")
    full = bayesvol.log_likelihood(model, mle.params, y, method="bellman", pointwise=True)
    np.testing.assert_allclose(by_mle.pointwise, full[-20:])
    assert np.isclose(by_mle.elpd, full[-20:].sum())
    by_posterior = leave_future_out(idata, model, y, 20, method="bellman")
    draws = np.stack([bayesvol.log_likelihood(model, {k: v[c, d] for k, v in posterior.items()}, y,
                                              method="bellman", pointwise=True)[-20:]
                      for c in range(2) for d in range(6)])
    np.testing.assert_allclose(by_posterior.pointwise, np.log(np.exp(draws).mean(axis=0)))
    assert by_posterior.se > 0
    with pytest.raises(ValueError, match="num_test"):
        leave_future_out(mle, model, y, 0)


def test_posterior_and_mle_table_survive_netcdf(setup, tmp_path):
    """Posterior and MLE saved to netCDF and read back give the same table, and the MLE tree keeps its attrs."""
    model, y, idata, mle, _ = setup
    mle_tree = mle.to_datatree()
    assert set(mle_tree.children) == {"estimate", "std_error", "robust_std_error"}
    assert mle_tree["estimate"]["phi"].item() == mle.params["phi"]
    idata.to_netcdf(tmp_path / "posterior.nc")
    mle_tree.to_netcdf(tmp_path / "mle.nc")
    posterior_back, mle_back = xr.load_datatree(tmp_path / "posterior.nc"), xr.load_datatree(tmp_path / "mle.nc")
    assert posterior_back.identical(idata) and mle_back.identical(mle_tree)
    assert mle_back.attrs["method"] == "qml" and mle_back.attrs["loglik"] == mle.loglik
    pd.testing.assert_frame_equal(estimates_table(posterior_back, {"QML": mle_back}, robust=True),
                                  estimates_table(idata, {"QML": mle}, robust=True))
