"""NUTS on DFSV: the factor-marginalised and full-latent programs give the same posterior; DataTree
layout."""

import arviz_stats
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesvol
from bayesvol.models import DFSV

TRUE = {"lambda_r": np.array([[1.0], [0.8]]), "Phi_f": np.array([[0.3]]), "Phi_h": np.array([[0.9]]),
        "mu": np.array([0.0]), "Q_h": np.array([[0.1]]), "sigma2": np.array([0.3, 0.2])}
T = 60
SETTINGS = dict(num_chains=1, num_warmup=300, num_samples=400, progress_bar=False, warn=False)


@pytest.fixture(scope="module")
def posteriors():
    sim = bayesvol.simulate(DFSV(), TRUE, T, seed=3)
    dates = pd.bdate_range("2021-01-04", periods=T)
    y = pd.DataFrame(sim.y, index=dates, columns=["EUR", "GBP"])
    marginal = bayesvol.sample(DFSV(), y, seed=1, **SETTINGS)
    full = bayesvol.sample(DFSV(marginalize_factors=False), y, seed=2, **SETTINGS)
    return sim, marginal, full


@pytest.mark.xdist_group("nuts")
def test_marginalised_and_full_latent_posteriors_agree(posteriors):
    _, marginal, full = posteriors
    # Posterior means agree within Monte Carlo error: the difference of two independent MCMC means has
    # standard error sqrt(mcse_1^2 + mcse_2^2) (ArviZ's batch-means MCSE); allow 4 of those per quantity
    # (9 quantities, so a false alarm has probability well under 1%).
    checks = {"mu": None, "Phi_h": None, "Phi_f": None, "lambda_r": ("EUR", "GBP"), "sigma2": None, "Q_h": None}
    for name in checks:
        a, b = marginal.posterior[name], full.posterior[name]
        if name == "lambda_r":
            a, b = a.sel(asset="GBP"), b.sel(asset="GBP")
        mean_a, mean_b = a.mean(("chain", "draw")).values, b.mean(("chain", "draw")).values
        se = np.sqrt(arviz_stats.mcse(a).values ** 2 + arviz_stats.mcse(b).values ** 2)
        assert np.all(np.abs(mean_a - mean_b) < 4 * np.ravel(se)), (name, mean_a, mean_b, se)
    # The log-variance path: compare its time average (one number, same MCSE logic).
    avg_a = marginal.posterior["h"].mean("time")
    avg_b = full.posterior["h"].mean("time")
    se = np.hypot(*(np.ravel(arviz_stats.mcse(avg).values)[0] for avg in (avg_a, avg_b)))
    assert abs(float(avg_a.mean()) - float(avg_b.mean())) < 4 * se
    # Smoothed factors (Rao-Blackwellised) against the sampled factors: the same posterior mean path.
    f_rb = marginal.posterior["f_mean"].mean(("chain", "draw")).values
    f_full = full.posterior["f"].mean(("chain", "draw")).values
    assert np.corrcoef(f_rb[:, 0], f_full[:, 0])[0, 1] > 0.95
    # Divergences: an isolated one can occur by chance on a 60-step series (the start and initial mass matrix
    # of the DFSV NUTS set-up in inference/dfsv_nuts.py change the sampler's path); more than 1% of the draws
    # would signal bad geometry.
    assert int(marginal.sample_stats["diverging"].sum()) <= 4


@pytest.mark.xdist_group("nuts")
def test_inference_data_dims_and_coords(posteriors, tmp_path):
    sim, marginal, full = posteriors
    post = marginal.posterior
    assert post["h"].dims == ("chain", "draw", "time", "factor")
    assert post["vol"].dims == ("chain", "draw", "time", "factor")
    assert post["f_mean"].dims == ("chain", "draw", "time", "factor")
    assert full.posterior["f"].dims == ("chain", "draw", "time", "factor")
    assert post["lambda_r"].dims == ("chain", "draw", "asset", "factor")
    assert post["Phi_h"].dims == ("chain", "draw", "factor", "factor2")
    assert post["sigma2"].dims == ("chain", "draw", "asset")
    assert list(post["asset"].values) == ["EUR", "GBP"] and list(post["factor"].values) == ["f1"]
    assert post["time"].values[0] == np.datetime64("2021-01-04")
    assert marginal.log_likelihood["y"].dims == ("chain", "draw", "time")
    assert "Kalman" in marginal.log_likelihood.attrs["log_likelihood"]
    assert marginal.observed_data["y"].dims == ("time", "asset")
    for hidden in ("h_std", "lambda_r_free", "loglik_y"):
        assert hidden not in post
    np.testing.assert_array_equal(np.asarray(post["lambda_r"].values[..., 0, 0]), 1.0)
    # The posterior-mean log-variance follows the truth even on this short series.
    h_mean = post["h"].mean(("chain", "draw")).values[:, 0]
    assert np.corrcoef(h_mean, sim.h[:, 0])[0, 1] > 0.3
    path = tmp_path / "dfsv.nc"
    marginal.to_netcdf(path)
    again = xr.load_datatree(path)
    np.testing.assert_array_equal(again.posterior["h"].values, post["h"].values)
    axes = bayesvol.plots.plot_factors(marginal, truth=(sim.f, sim.h))
    assert axes.shape == (1, 2)
