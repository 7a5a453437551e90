"""The ``bayesvol`` command: outputs of demo and fit, and one-line errors."""

import subprocess
import sys

import pandas as pd
import pytest
import xarray as xr

from bayesvol.cli import main

TINY = ["--num-chains", "1", "--num-warmup", "40", "--num-samples", "40", "--no-progress"]


@pytest.mark.xdist_group("cli")
def test_demo_writes_netcdf_summary_and_plots(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 0
    for name in ("idata.nc", "summary.csv", "volatility.png", "trace.png", "rank.png"):
        assert (out / name).stat().st_size > 0, name
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert list(summary.index) == ["mu", "phi", "sigma"]
    printed = capsys.readouterr().out
    assert "Posterior summary" in printed and "phi" in printed
    idata = xr.load_datatree(out / "idata.nc")
    assert idata.posterior["vol"].sizes["time"] == 945


@pytest.mark.xdist_group("cli")
def test_fit_bundled_prices_with_svi(tmp_path):
    out = tmp_path / "fit"
    code = main(["fit", "--model", "sv", "--data", "fred_h10", "--column", "DEXUSUK", "--start", "2010-01-01",
                 "--method", "svi", "--num-steps", "300", "--out", str(out), *TINY])
    assert code == 0
    idata = xr.load_datatree(out / "idata.nc")
    assert str(idata.posterior["time"].values[0]).startswith("2010-01")
    assert (out / "volatility.png").exists()


@pytest.mark.xdist_group("cli")
def test_fit_user_csv_of_prices(tmp_path):
    import bayesvol

    prices = bayesvol.datasets.load("fred_h10")["DEXJPUS"].loc["2012"].dropna()
    path = tmp_path / "jpy.csv"
    prices.rename("close").to_csv(path)
    out = tmp_path / "out"
    assert main(["fit", "--data", str(path), "--column", "close", "--errors", "t", "--out", str(out), *TINY]) == 0
    assert pd.read_csv(out / "summary.csv", index_col=0).index.tolist() == ["mu", "phi", "sigma", "nu"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "--data", "fred_h10", "--column", "DEXXXUS"], "no column 'DEXXXUS' in 'fred_h10'"),
        (["fit", "--data", "fred_h10"], "--column is required"),
        (["fit", "--data", "nowhere.csv"], "no such file"),
        (["fit", "--data", "gbpusd", "--end", "1981-10-10"], "at least 20 are needed"),
        (["demo", "--num-samples", "0"], "--num-samples must be positive"),
    ],
)
def test_errors_are_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bayesvol: error:") and message in err and "\n" not in err


def test_unreadable_csv(tmp_path, capsys):
    path = tmp_path / "broken.csv"
    path.write_bytes(b"\x00\x01\x02")
    assert main(["fit", "--data", str(path), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("bayesvol: error:")


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "bayesvol.cli", "--help"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and "demo" in result.stdout and "fit" in result.stdout
