"""Every family's posterior is an ArviZ 1.x DataTree in the package's conventions and survives netCDF (and
zarr, where installed) without loss; so does the tree of a maximum-likelihood fit.

Tiny runs (one chain, a few draws, 40 observations): these check layout and storage, not inference.
"""

import importlib.util
import warnings

import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
import xarray as xr

import bayesvol
from bayesvol.models import DCC, DFSV, EGARCH, GARCH, IGGARCH, SV, WishartSV

T = 40
DATES = pd.bdate_range("2022-03-01", periods=T)
ASSETS = ["EUR", "GBP"]

# family -> (model, parameters to simulate from, its parameters' extra dims)
FAMILIES = {
    "sv": (SV(), {"mu": -0.5, "phi": 0.95, "sigma": 0.25}, {}),
    "garch": (GARCH(), {"mu": 0.0, "omega": 0.05, "alpha": 0.08, "beta": 0.9}, {}),
    "egarch": (EGARCH(), {"mu": 0.0, "omega": 0.0, "alpha": 0.15, "gamma": -0.05, "beta": 0.95}, {}),
    # The default IG-GARCH priors are not stationary at their median, where NUTS starts; these are.
    "iggarch": (IGGARCH(priors={"b": dist.Normal(0.2, 0.1), "c": dist.HalfNormal(0.02), "a": dist.HalfNormal(1.0)}),
                {"lam": 0.02, "eta": -0.25, "w": 0.01, "b": -0.19, "c": 0.054, "a": 4.9}, {}),
    "dfsv": (DFSV(), {"lambda_r": np.array([[1.0], [0.8]]), "Phi_f": np.array([[0.3]]), "Phi_h": np.array([[0.9]]),
                      "mu": np.array([0.0]), "Q_h": np.array([[0.1]]), "sigma2": np.array([0.3, 0.2])},
             {"lambda_r": ("asset", "factor"), "sigma2": ("asset",), "Phi_h": ("factor", "factor2")}),
    "wishart_sv": (WishartSV(), {"nu": 9.0, "d": 0.6, "A": np.array([[1.2, 0.3], [0.3, 0.8]])},
                   {"A": ("asset", "asset2")}),
    "dcc": (DCC(), {"omega": [0.05, 0.03], "alpha": [0.06, 0.08], "beta": [0.90, 0.88], "dcc_a": 0.05, "dcc_b": 0.9},
            {"omega": ("asset",), "alpha": ("asset",)}),
}
# The multivariate families take about a minute each to compile on two cores: they run with the slow checks.
SLOW = {"dfsv", "wishart_sv", "dcc"}
HAS_ZARR = importlib.util.find_spec("zarr") is not None


def _data(model, params):
    y = np.asarray(bayesvol.simulate(model, params, T, seed=5).y)
    if y.ndim == 1:
        return pd.Series(y, index=DATES, name="y")
    return pd.DataFrame(y, index=DATES, columns=ASSETS)


@pytest.fixture(scope="module", params=[pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
                                        for name in FAMILIES])
def posterior(request):
    model, params, extra_dims = FAMILIES[request.param]
    y = _data(model, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = bayesvol.sample(model, y, num_chains=1, num_warmup=15, num_samples=8, seed=2,
                                posterior_predictive=True, progress_bar=False, warn=False)
    return request.param, model, y, idata, extra_dims


def _plain(attrs):
    # netCDF hands sequences back as numpy arrays (ArviZ's sample_dims attribute is a list)
    return {key: np.asarray(value).tolist() if isinstance(value, list | np.ndarray) else value
            for key, value in attrs.items()}


def _assert_same(tree, back):
    assert set(back.children) == set(tree.children)
    assert back.identical(tree)
    assert _plain(back.attrs) == _plain(tree.attrs)
    for group in tree.children:
        assert _plain(back[group].attrs) == _plain(tree[group].attrs), group
        for name, var in tree[group].data_vars.items():
            np.testing.assert_array_equal(back[group][name].values, var.values)
            assert back[group][name].dims == var.dims


@pytest.mark.xdist_group("roundtrip")
def test_posterior_layout_and_netcdf_round_trip(posterior, tmp_path):
    family, model, y, idata, extra_dims = posterior
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "posterior_predictive"} <= set(
        idata.children), family
    post = idata.posterior
    for name in model.param_names:
        assert post[name].dims[:2] == ("chain", "draw"), (family, name)
    for name, dims in extra_dims.items():
        assert post[name].dims[2:] == dims, (family, name)
    assert "vol" in post and post["vol"].dims[:3] == ("chain", "draw", "time")
    np.testing.assert_array_equal(post["time"].values, DATES.to_numpy())
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "time")
    assert idata.observed_data["y"].dims[0] == "time"
    if "asset" in idata.observed_data["y"].dims and family == "dfsv":
        assert list(idata.observed_data["asset"].values) == ASSETS
    for group in idata.children:
        attrs = idata[group].attrs
        assert attrs["model"] == model.describe() and attrs["inference"] == "nuts", (family, group)
        assert attrs["log_likelihood"] == model.loglik_kind
    path = tmp_path / f"{family}.nc"
    idata.to_netcdf(path)
    back = xr.load_datatree(path)
    _assert_same(idata, back)
    assert pd.DatetimeIndex(back.posterior["time"].values).equals(DATES)
    if HAS_ZARR:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr's note that consolidated metadata is outside its v3 spec
            idata.to_zarr(tmp_path / f"{family}.zarr")
            _assert_same(idata, xr.open_datatree(tmp_path / f"{family}.zarr", engine="zarr").load())


@pytest.mark.xdist_group("roundtrip")
def test_mle_tree_uses_the_posterior_names_and_dims(tmp_path):
    """The DFSV fit's tree: the posterior's names, dims and asset coords, and a lossless netCDF round trip."""
    model, params, extra_dims = FAMILIES["dfsv"]
    y = _data(model, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayesvol.fit(model, y, method="bellman", num_starts=1, maxiter=50, warn=False)
    tree = fit.to_datatree()
    for name, dims in extra_dims.items():
        assert tree["estimate"][name].dims == dims
        np.testing.assert_array_equal(tree["estimate"][name].values, fit.params[name])
        np.testing.assert_array_equal(tree["std_error"][name].values, fit.se[name])
    assert list(tree["estimate"]["asset"].values) == ASSETS
    assert tree.attrs["method"] == "bellman" and tree.attrs["nobs"] == T
    tree.to_netcdf(tmp_path / "mle.nc")
    _assert_same(tree, xr.load_datatree(tmp_path / "mle.nc"))
