"""Posterior vs MLE tables and plots, predictive log-likelihoods for model comparison, leave-future-out."""

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

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
    idata = az.from_dict(posterior=posterior, observed_data={"y": y.to_numpy()}, dims={"y": ["time"]},
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
                           az.hdi(draws, hdi_prob=0.9))
        assert table.loc[name, "QML"] == mle.params[name] and table.loc[name, "QML se"] == mle.se[name]
    robust = estimates_table(mle=mle, robust=True)
    assert robust.loc["phi", "MLE (qml) se"] == mle.robust_se["phi"]
    with pytest.raises(ValueError, match="not in the posterior"):
        estimates_table(idata, var_names=["nu"])
    with pytest.raises(TypeError, match="MLEResult"):
        estimates_table(idata, mle={"a": 1.0})


def test_forest_plot_overlays_each_mle(setup):
    model, y, idata, mle, _ = setup
    axes = plot_estimates(idata, {"QML": mle, "QML again": mle})
    assert len(axes) == 3
    # Per parameter: the HDI line + mean marker, and one error bar per MLE.
    assert all(len(ax.containers) == 2 for ax in axes)
    assert axes[1].get_title(loc="left") == "phi"
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
    assert "log_likelihood" not in idata.groups()  # the input is not modified
    thinned = add_predictive_log_likelihood(idata, model, y, method="bellman", thin=2)
    assert thinned.posterior["mu"].shape == (2, 3) and thinned.log_likelihood["y"].shape == (2, 3, 120)
    ranking = az.compare({"pf": out, "bellman": thinned})
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
