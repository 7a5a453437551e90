import numpy as np
import pandas as pd
import pytest

from bayesvol import datasets


def test_gbpusd_matches_its_provenance(gbpusd):
    assert isinstance(gbpusd.index, pd.DatetimeIndex)
    assert gbpusd.shape == (945,)
    assert gbpusd.index[0] == pd.Timestamp("1981-10-02") and gbpusd.index[-1] == pd.Timestamp("1985-06-28")
    # The provenance file states the sample mean of the 945 values.
    assert gbpusd.mean() == pytest.approx(-0.035310, abs=5e-7)
    assert "Harvey" in datasets.provenance("gbpusd")


def test_fred_h10_prices():
    prices = datasets.load("fred_h10")
    assert isinstance(prices.index, pd.DatetimeIndex) and prices.index.is_monotonic_increasing
    assert prices.shape == (11375, 26)
    assert prices.loc["1971-01-04", "DEXUSUK"] == pytest.approx(2.3938)
    assert "Board of Governors" in datasets.provenance("fred_h10")


def test_log_returns_equals_direct_formula_and_skips_missing_prices():
    prices = pd.Series([100.0, 101.0, np.nan, 99.0, 98.5],
                       index=pd.date_range("2020-01-01", periods=5, freq="D"))
    returns = datasets.log_returns(prices, gaps="multi_day")
    expected = 100 * np.diff(np.log([100.0, 101.0, 99.0, 98.5]))
    np.testing.assert_allclose(returns.to_numpy(), expected, rtol=1e-14)
    assert list(returns.index) == list(prices.index[[1, 3, 4]])
    assert not returns.isna().any()


def test_log_returns_of_fred_series_have_no_gaps():
    returns = datasets.log_returns(datasets.load("fred_h10")["DEXUSUK"], gaps="multi_day")
    assert returns.notna().all() and returns.shape[0] > 10_000
    assert 0.3 < returns.std() < 1.0  # daily percent GBP/USD moves


def test_log_returns_frame_keeps_dates_where_all_columns_observed():
    prices = datasets.load("fred_h10")[["DEXUSUK", "DEXJPUS"]].loc["2000"]
    returns = datasets.log_returns(prices, gaps="multi_day")
    assert returns.shape[1] == 2 and not returns.isna().any().any()


@pytest.mark.parametrize(
    ("prices", "match"),
    [([1.0, -2.0, 3.0], "positive"), ([1.0, 0.0, 3.0], "positive"), ([1.0, np.inf, 2.0], "inf"),
     ([1.0, np.nan], "observed price")],
)
def test_log_returns_rejects_bad_prices(prices, match):
    with pytest.raises(ValueError, match=match):
        datasets.log_returns(prices)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown data set 'nope'.*gbpusd"):
        datasets.load("nope")


def test_user_csv_round_trip(tmp_path):
    path = tmp_path / "prices.csv"
    frame = pd.DataFrame({"day": ["2021-01-05", "2021-01-04", "2021-01-06"], "close": [10.0, 9.0, 11.0]})
    frame.to_csv(path, index=False)
    series = datasets.load_csv(path, column="close")
    assert isinstance(series.index, pd.DatetimeIndex)
    assert list(series.to_numpy()) == [9.0, 10.0, 11.0]  # sorted by date
    with pytest.raises(ValueError, match="no column 'open'"):
        datasets.load_csv(path, column="open")
    with pytest.raises(ValueError, match="no such file"):
        datasets.load_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("when,close\nyesterday,1\ntoday,2\n")
    with pytest.raises(ValueError, match="does not hold dates"):
        datasets.load_csv(bad)
