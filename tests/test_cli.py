"""The ``bayesvol`` command: models, methods, data reading, outputs, the compact posterior file, one-line errors."""

import argparse
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesvol
from bayesvol.cli import _MODELS, main
from bayesvol.cli import data as cli_data
from bayesvol.cli.families import FAMILIES, build_model, check_method, methods_of
from bayesvol.cli.output import PATH_DRAWS, QUANTILES, compact_tree, write_netcdf
from bayesvol.inference import registry

TINY = ["--num-chains", "1", "--num-warmup", "40", "--num-samples", "40", "--no-progress"]


# --- models and methods ---------------------------------------------------------------------------------------
def test_the_model_names_are_the_families_and_each_pair_is_a_registry_row():
    assert _MODELS == tuple(FAMILIES)
    every_method = sorted({method for (_, method) in registry.TABLE})
    for name in _MODELS:
        model = build_model(name, argparse.Namespace())
        for method in every_method:
            try:
                registry.lookup(model, method)
                registered = True
            except ValueError:
                registered = False
            if registered:
                expected = "sampler" if method in registry.SAMPLERS else "likelihood"
                assert check_method(name, model, method) == expected
            else:
                with pytest.raises(ValueError, match=f"valid methods for {name}: {', '.join(methods_of(model))}$"):
                    check_method(name, model, method)


def test_the_docs_table_lists_the_registry_methods():
    import pathlib
    import re

    page = (pathlib.Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `[^|]*` \|[^\n]*\| ([a-z_, ]+) \|$", page, flags=re.MULTILINE))
    assert set(rows) == set(FAMILIES)
    for name, listed in rows.items():
        assert listed.split(", ") == methods_of(build_model(name, argparse.Namespace())), name


def test_model_options_reach_the_model():
    args = argparse.Namespace(dist="skewt", mean="zero", errors=None, leverage=False)
    assert build_model("gjr", args) == bayesvol.models.GARCH(vol="gjr", dist="skewt", mean="zero")
    assert build_model("sv", argparse.Namespace(errors="t", leverage=False)) == bayesvol.models.SV(errors="t")
    assert build_model("dfsv", argparse.Namespace(num_factors=2, idiosyncratic="sv")) == bayesvol.models.DFSV(
        num_factors=2, idiosyncratic="sv")
    assert build_model("iggarch", argparse.Namespace(components=2)) == bayesvol.models.IGGARCH(components=2)


# --- reading data ----------------------------------------------------------------------------------------------
def _args(**kw):
    defaults = dict(model="sv", data=None, column=None, returns=False, start=None, end=None, date_format=None,
                    dayfirst=False)
    return argparse.Namespace(**(defaults | kw))


def test_blank_lines_are_skipped_and_reported_and_dates_read_day_first(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("date,close\n31/12/2019,97\n02/01/2020,100\n\n03/01/2020,101\n,\n06/01/2020,\n07/01/2020,99\n\n")
    returns = cli_data.load_returns(_args(data=str(path), dayfirst=True, start="2020-01-02"), multivariate=False)
    expected = 100 * np.diff(np.log([100.0, 101.0, 99.0]))
    np.testing.assert_allclose(returns.values.to_numpy(), expected, rtol=1e-15)
    assert list(returns.values.index.strftime("%Y-%m-%d")) == ["2020-01-03", "2020-01-07"]
    assert returns.notes[0] == "skipped 3 blank line(s) of prices.csv (line 4, 6, 9)"
    assert returns.notes[1] == "dropped 1 row(s) outside --start/--end (kept 4 of 5)"
    assert any(note.startswith("dropped 1 row(s) where the value is missing") for note in returns.notes)
    same = cli_data.load_returns(_args(data=str(path), date_format="%d/%m/%Y", start="2020-01-02"),
                                 multivariate=False)
    pd.testing.assert_series_equal(same.values, returns.values)


def test_returns_without_the_flag_and_prices_with_it(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("date,r\n2020-01-02,0.5\n2020-01-03,-1.25\n2020-01-06,0.3\n")
    with pytest.raises(ValueError, match=r"column 'r' of r.csv has 1 negative value\(s\) \(the first -1.25 on "
                                         r"2020-01-03\): it looks like returns, not prices; pass --returns"):
        cli_data.load_returns(_args(data=str(path)), multivariate=False)
    prices = tmp_path / "p.csv"
    prices.write_text("date,p\n2020-01-02,100\n2020-01-03,101\n")
    loaded = cli_data.load_returns(_args(data=str(prices), returns=True), multivariate=False)
    assert "if the column holds prices, drop --returns" in loaded.notes[-1]


def test_a_multivariate_model_takes_every_csv_column(tmp_path):
    path = tmp_path / "panel.csv"
    path.write_text("date,a,b,c\n2020-01-02,1,2,3\n2020-01-03,1.1,2.2,\n2020-01-06,1.2,2.1,3.3\n"
                    "2020-01-07,1.3,2.0,3.1\n")
    panel = cli_data.load_returns(_args(model="dcc", data=str(path)), multivariate=True)
    assert list(panel.values.columns) == ["a", "b", "c"] and panel.values.shape == (2, 3)
    assert any(note.startswith("dropped 1 row(s) where a series has no value") for note in panel.notes)
    two = cli_data.load_returns(_args(model="dcc", data=str(path), column=["b", "a"]), multivariate=True)
    assert list(two.values.columns) == ["b", "a"] and two.values.shape == (3, 2)


# --- maximum likelihood ----------------------------------------------------------------------------------------
@pytest.mark.xdist_group("cli")
def test_garch_by_maximum_likelihood_writes_estimates_and_plots(tmp_path, capsys):
    out = tmp_path / "gjr"
    argv = ["fit", "--model", "gjr", "--dist", "t", "--data", "gbpusd", "--end", "1983-06-30", "--method", "exact"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "maximum likelihood by exact ..." in printed and "maximum likelihood finished in" in printed
    y = bayesvol.datasets.load("gbpusd").loc[:"1983-06-30"]
    direct = bayesvol.fit(bayesvol.models.GARCH(vol="gjr", dist="t"), y)
    table = pd.read_csv(out / "estimates.csv", index_col=0)
    np.testing.assert_allclose(table["coef"], direct.flat(direct.params), rtol=1e-10)
    np.testing.assert_allclose(table["std err"], direct.flat(direct.se), rtol=1e-8)
    np.testing.assert_allclose(table["robust std err"], direct.flat(direct.robust_se), rtol=1e-8)
    tree = xr.load_datatree(out / "estimates.nc")
    assert float(tree["estimate"]["beta"]) == pytest.approx(direct.params["beta"], rel=1e-12)
    assert (out / "summary.txt").read_text().startswith("GJR-GARCH")
    for name in ("volatility.png", "residuals.png"):
        assert (out / name).stat().st_size > 10_000, name

    # The same returns from a user's CSV with day-first dates and blank lines give the same estimates.
    path = tmp_path / "returns.csv"
    lines = [f"{day:%d/%m/%Y},{value!r}" for day, value in y.items()]
    path.write_text("day,ret\n" + "\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:]) + "\n")
    again = tmp_path / "csv"
    assert main(["fit", "--model", "gjr", "--dist", "t", "--data", str(path), "--returns", "--dayfirst",
                 "--method", "exact", "--out", str(again)]) == 0
    assert "data: skipped 1 blank line(s) of returns.csv (line 12)" in capsys.readouterr().out
    np.testing.assert_allclose(pd.read_csv(again / "estimates.csv", index_col=0)["coef"], table["coef"],
                               rtol=1e-10)


@pytest.mark.slow
@pytest.mark.xdist_group("cli")
def test_dcc_two_step_on_several_columns(tmp_path):
    out = tmp_path / "dcc"
    argv = ["fit", "--model", "dcc", "--data", "fred_h10", "--column", "DEXUSUK", "--column", "DEXJPUS",
            "--start", "2012-01-01", "--end", "2012-09-30", "--method", "two_step", "--out", str(out)]
    assert main(argv) == 0
    table = pd.read_csv(out / "estimates.csv", index_col=0)
    assert {"omega[DEXUSUK]", "omega[DEXJPUS]", "dcc_a", "dcc_b"} <= set(table.index)
    tree = xr.load_datatree(out / "estimates.nc")
    assert list(tree["estimate"]["omega"]["asset"].values) == ["DEXUSUK", "DEXJPUS"]
    assert (out / "volatility.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.xdist_group("cli")
def test_dfsv_by_the_bellman_filter(tmp_path):
    out = tmp_path / "dfsv"
    argv = ["fit", "--model", "dfsv", "--num-factors", "1", "--data", "fred_h10", "--column", "DEXUSUK", "DEXJPUS",
            "DEXSZUS", "--start", "2012-01-01", "--end", "2012-06-30", "--method", "bellman", "--out", str(out)]
    assert main(argv) == 0
    assert "lambda_r[2,0]" in pd.read_csv(out / "estimates.csv", index_col=0).index
    assert xr.load_datatree(out / "estimates.nc")["estimate"]["lambda_r"].dims == ("asset", "factor")


# --- samplers and the compact file -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_fit(tmp_path_factory):
    """SV by NUTS on 100 returns, written whole (--save full)."""
    out = tmp_path_factory.mktemp("full")
    argv = ["fit", "--model", "sv", "--data", "gbpusd", "--end", "1982-02-22", "--save", "full",
            "--num-chains", "2", "--num-warmup", "30", "--num-samples", "30", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    return out


@pytest.mark.slow
@pytest.mark.xdist_group("cli")
def test_compact_tree_keeps_parameters_and_summarises_paths(full_fit, tmp_path):
    full = xr.load_datatree(full_fit / "idata.nc")
    assert {"log_likelihood", "posterior_predictive"} <= set(full.children)
    compact = compact_tree(full, path_draws=20)
    for name in ("mu", "phi", "sigma"):
        np.testing.assert_array_equal(compact["posterior"][name].values, full["posterior"][name].values)
        assert compact["posterior"][name].dtype == np.float64
    assert "h" not in compact["posterior"] and "time" not in compact["posterior"].coords
    draws = full["posterior"]["vol"].values.reshape(-1, full["posterior"].sizes["time"])
    np.testing.assert_allclose(compact["posterior_quantiles"]["vol"].values, np.quantile(draws, QUANTILES, axis=0),
                               rtol=1e-13)
    np.testing.assert_allclose(compact["posterior_mean"]["vol"].values, draws.mean(axis=0), rtol=1e-13)
    assert compact["posterior_quantiles"]["vol"].dims == ("quantile", "time")
    paths = compact["posterior_paths"]["h"]
    assert paths.dtype == np.float32 and paths.sizes["chain"] * paths.sizes["draw"] == 20
    kept = full["posterior"]["h"].sel(draw=paths["draw"].values).values
    np.testing.assert_allclose(paths.values, kept, rtol=2 ** -23)  # float32 rounding
    predictive = full["posterior_predictive"]["y"].values.reshape(draws.shape)
    np.testing.assert_allclose(compact["posterior_predictive_quantiles"]["y"].values,
                               np.quantile(predictive, QUANTILES, axis=0), rtol=1e-13)
    np.testing.assert_allclose(compact["posterior_predictive_mean"]["y"].values, predictive.mean(axis=0),
                               rtol=1e-13)
    assert "log_likelihood" not in compact.children

    path = tmp_path / "compact.nc"
    write_netcdf(compact, path)
    back = xr.load_datatree(path)
    np.testing.assert_array_equal(back["posterior"]["phi"].values, full["posterior"]["phi"].values)
    # Size bound: float64 parameters and sample stats for every draw, float32 paths for 20 draws, quantiles
    # and means (h, vol, y), plus 200 kB for coordinates, attributes and HDF5 headers (eight groups). For the
    # demo (3 parameters, 6 sample stats, 4000 draws, 945 dates, 100 paths) the same count is 1.4 MB.
    num_draws, num_time = draws.shape
    bound = (8 * num_draws * (3 + len(full["sample_stats"].data_vars)) + 4 * 20 * num_time * 2
             + 8 * (len(QUANTILES) + 1) * num_time * 3 + 200_000)
    assert path.stat().st_size <= bound, (path.stat().st_size, bound)


def test_compact_tree_of_a_factor_model_keeps_the_per_asset_volatility():
    # A DFSV-shaped posterior of random draws: the per-asset sd is sqrt(sum_k lambda_ik^2 vol_tk^2 + sigma2_i).
    rng = np.random.default_rng(3)
    chains, draws, time, assets, factors = 2, 30, 12, 3, 2
    dims = {"lambda_r": ("chain", "draw", "asset", "factor"), "sigma2": ("chain", "draw", "asset"),
            "vol": ("chain", "draw", "time", "factor")}
    values = {"lambda_r": rng.normal(size=(chains, draws, assets, factors)),
              "sigma2": rng.uniform(0.1, 1.0, size=(chains, draws, assets)),
              "vol": rng.uniform(0.5, 2.0, size=(chains, draws, time, factors))}
    posterior = xr.Dataset({name: (dims[name], values[name]) for name in dims},
                           coords={"chain": range(chains), "draw": range(draws), "time": range(time),
                                   "asset": ["a", "b", "c"], "factor": ["f1", "f2"]})
    compact = compact_tree(xr.DataTree.from_dict({"posterior": posterior}), path_draws=10)
    naive = np.sqrt(np.einsum("cdik,cdtk->cdti", values["lambda_r"] ** 2, values["vol"] ** 2)
                    + values["sigma2"][:, :, None, :]).reshape(chains * draws, time, assets)
    np.testing.assert_allclose(compact["posterior_quantiles"]["vol_asset"].transpose("quantile", "time", "asset"),
                               np.quantile(naive, QUANTILES, axis=0), rtol=1e-13)
    np.testing.assert_allclose(compact["posterior_mean"]["vol_asset"].transpose("time", "asset"), naive.mean(axis=0),
                               rtol=1e-13)
    assert set(compact["posterior"].data_vars) == {"lambda_r", "sigma2"}
    assert compact["posterior_paths"].sizes["draw"] == 5  # 10 draws over 2 chains


@pytest.mark.slow
@pytest.mark.xdist_group("cli")
def test_demo_writes_a_compact_netcdf_summary_and_plots(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 0
    for name in ("idata.nc", "summary.csv", "volatility.png", "trace.png", "rank.png"):
        assert (out / name).stat().st_size > 0, name
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert list(summary.index) == ["mu", "phi", "sigma"]
    printed = capsys.readouterr().out
    assert "Posterior summary" in printed and "sampling finished in" in printed
    idata = xr.load_datatree(out / "idata.nc")
    assert idata["posterior_quantiles"]["vol"].sizes["time"] == 945
    assert idata["posterior_paths"]["vol"].sizes["draw"] == 40  # 1 chain: every draw up to PATH_DRAWS
    assert PATH_DRAWS >= 40
    # 4 x 1000 draws would still be about a megabyte: the paths do not grow with the draws.
    assert (out / "idata.nc").stat().st_size < 1_000_000


# --- errors ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "--data", "fred_h10", "--column", "DEXXXUS"], "no column 'DEXXXUS' in 'fred_h10'"),
        (["fit", "--data", "fred_h10"], "--column is required"),
        (["fit", "--data", "nowhere.csv"], "no such file"),
        (["fit", "--data", "gbpusd", "--end", "1981-10-10"], "at least 20 are needed"),
        (["demo", "--num-samples", "0"], "--num-samples must be positive"),
        (["fit", "--model", "sv", "--data", "gbpusd", "--method", "exact"],
         "--method exact is not available for --model sv; valid methods for sv: nuts, pmmh, svi, bellman, eis, "
         "pf, qml"),
        (["fit", "--model", "garch", "--data", "gbpusd", "--method", "pmmh"], "valid methods for garch: nuts, svi, "
                                                                             "exact"),
        (["fit", "--model", "sv", "--dist", "t", "--data", "gbpusd"],
         "--dist does not apply to --model sv (it takes --errors, --leverage)"),
        (["fit", "--model", "garch", "--data", "gbpusd", "--method", "exact", "--num-samples", "10"],
         "--num-samples applies to --method nuts or svi or pmmh, not to --method exact"),
        (["fit", "--model", "garch", "--data", "gbpusd", "--method", "exact", "--seed", "3"],
         "--seed applies to the samplers and simulated likelihoods, not to --method exact"),
        (["fit", "--model", "sv", "--data", "gbpusd", "--method", "qml", "--num-particles", "10"],
         "--num-particles applies to --method pmmh and particle-filter likelihoods"),
        (["fit", "--model", "sv", "--data", "gbpusd", "--method", "svi", "--num-particles", "10"],
         "--num-particles applies to --method pmmh and particle-filter likelihoods, not to --method svi"),
        (["fit", "--model", "dcc", "--data", "fred_h10", "--column", "DEXUSUK", "DEXJPUS", "--method", "two_step",
          "--seed", "1"], "--seed applies to the samplers and simulated likelihoods, not to --method two_step"),
        (["fit", "--data", "gbpusd", "--column", "close"], "'gbpusd' holds one series ('gbpusd')"),
        (["fit", "--model", "dcc", "--data", "gbpusd"], "'gbpusd' holds one series; this model needs several"),
        (["fit", "--model", "dcc", "--data", "fred_h10", "--column", "DEXUSUK"], "give two or more --column"),
        (["fit", "--data", "fred_h10", "--column", "DEXUSUK", "DEXJPUS"], "--model sv models one series; got 2"),
        (["fit", "--data", "gbpusd", "--dayfirst"], "--dayfirst applies to CSV files"),
        (["fit", "--data", "fred_h10", "--column", "DEXUSUK", "--returns"], "--returns does not apply to 'fred_h10'"),
    ],
)
def test_errors_are_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bayesvol: error:") and message in err and "\n" not in err


def test_a_typo_in_a_number_names_the_cell(tmp_path, capsys):
    path = tmp_path / "typo.csv"
    path.write_text("date,close\n2020-01-02,1.5\n\n2020-01-03,1.5x301\n2020-01-06,1.6\n")
    assert main(["fit", "--model", "garch", "--data", str(path), "--method", "exact", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "column 'close' of" in err and "'1.5x301' on 2020-01-03 (line 4) is not a number" in err


def test_unreadable_csv(tmp_path, capsys):
    path = tmp_path / "broken.csv"
    path.write_bytes(b"\x00\x01\x02")
    assert main(["fit", "--data", str(path), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("bayesvol: error:")


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "bayesvol.cli", "--help"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and "demo" in result.stdout and "fit" in result.stdout
