"""Returns on the prices' calendar: a missing price gives missing returns, a late start leading ones.

``datasets.log_returns`` (both ``gaps`` options) against returns written out by hand, the bundled H.10 panel,
and the command line, which keeps NaN returns for a model that supports them and drops them otherwise.
"""

import argparse

import numpy as np
import pandas as pd
import pytest

import bayesvol
from bayesvol import datasets
from bayesvol.cli import data as cli_data
from bayesvol.cli import main

DAYS = pd.date_range("2020-01-01", periods=7, freq="D")
# log p_t - log p_{t-1} against log(p_t / p_{t-1}): the difference of two logs near 4.6 loses about
# eps * 4.6 / |r| ~ 2e-13 relative for the smallest return here (|r| ~ 0.005).
RTOL = 1e-12


def test_a_missing_price_gives_a_missing_return_on_its_date_and_the_next():
    prices = pd.Series([100.0, 101.0, np.nan, 99.0, 98.5, np.nan, np.nan], index=DAYS)
    returns = datasets.log_returns(prices)
    # Trailing dates after the last price carry no return and are left out; the gap on day 3 is two NaN.
    expected = [100 * np.log(101 / 100), np.nan, np.nan, 100 * np.log(98.5 / 99)]
    np.testing.assert_allclose(returns.to_numpy(), expected, rtol=RTOL)
    assert list(returns.index) == list(DAYS[1:5])
    assert returns.attrs["num_missing"] == 2 and returns.attrs["units"] == "percent log return"

    multi_day = datasets.log_returns(prices, gaps="multi_day")
    expected = [100 * np.log(101 / 100), 100 * np.log(99 / 101), 100 * np.log(98.5 / 99)]
    np.testing.assert_allclose(multi_day.to_numpy(), expected, rtol=RTOL)
    assert list(multi_day.index) == [DAYS[1], DAYS[3], DAYS[4]]


def test_a_late_series_has_leading_missing_returns_and_a_date_without_any_price_is_left_out():
    prices = pd.DataFrame({"early": [10.0, 11.0, 12.0, np.nan, 12.5, 12.0, 11.0],
                           "late": [np.nan, np.nan, 5.0, np.nan, 5.5, 5.0, 5.2]}, index=DAYS)
    returns = datasets.log_returns(prices, scale=1.0)
    # Day 3 has no price at all: its returns and day 4's are missing for both series, so both rows go.
    early = [np.log(11 / 10), np.log(12 / 11), np.log(12 / 12.5), np.log(11 / 12)]
    late = [np.nan, np.nan, np.log(5 / 5.5), np.log(5.2 / 5)]
    np.testing.assert_allclose(returns["early"].to_numpy(), early, rtol=RTOL)
    np.testing.assert_allclose(returns["late"].to_numpy(), late, rtol=RTOL)
    assert list(returns.index) == [DAYS[1], DAYS[2], DAYS[5], DAYS[6]]
    assert returns.attrs["num_missing"] == 2 and returns.attrs["units"] == "1.0 x log return"
    # Each column is the series' own returns on the rows the panel keeps.
    for name in prices:
        alone = datasets.log_returns(prices[name], scale=1.0)
        pd.testing.assert_series_equal(returns[name], alone.reindex(returns.index), check_names=False,
                                       check_freq=False)

    multi_day = datasets.log_returns(prices, scale=1.0, gaps="multi_day")
    assert list(multi_day.index) == [DAYS[4], DAYS[5], DAYS[6]]
    np.testing.assert_allclose(multi_day["late"].to_numpy(), np.diff(np.log([5.0, 5.5, 5.0, 5.2])), rtol=RTOL)


def test_bad_gaps_and_too_few_prices_are_refused():
    prices = pd.Series([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="gaps must be 'missing'.* or 'multi_day'.*got 'drop'"):
        datasets.log_returns(prices, gaps="drop")
    with pytest.raises(ValueError, match="only 2 observed price\\(s\\) in column 'b'; need at least 3"):
        datasets.log_returns(pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, np.nan, 2.0]}))
    with pytest.raises(ValueError, match="no two consecutive rows hold observed prices.*gaps='multi_day'"):
        datasets.log_returns([1.0, np.nan, 2.0, np.nan, 3.0])


def test_the_h10_panel_keeps_its_calendar():
    prices = datasets.load("fred_h10")[["DEXUSUK", "DEXUSEU"]]
    returns = datasets.log_returns(prices)
    # The euro is quoted from 1999-01-04: its returns are missing until the next day, the pound's run from 1971.
    assert returns.index[0] == pd.Timestamp("1971-01-05")
    euro = returns["DEXUSEU"]
    assert euro.first_valid_index() == pd.Timestamp("1999-01-05") and euro.loc[:"1999-01-04"].isna().all()
    assert returns["DEXUSUK"].loc[:"1998-12-31"].notna().mean() > 0.9
    # Every kept row has a return, every row of the prices' calendar with one is kept, each equals its formula.
    assert returns.notna().any(axis=1).all()
    by_hand = 100 * (np.log(prices) - np.log(prices.shift(1)))
    formed = by_hand.loc[by_hand.notna().any(axis=1)]
    pd.testing.assert_frame_equal(returns, formed, check_freq=False, rtol=1e-13)
    assert returns.attrs["num_missing"] == int(returns.isna().sum().sum())
    # A holiday such as Christmas 2003 has no quote: no return spans it.
    assert pd.Timestamp("2003-12-25") not in returns.index and pd.Timestamp("2003-12-26") not in returns.index
    assert returns.loc["2003-12-29"].notna().all()


# --- the command line ---------------------------------------------------------------------------------------
def _args(**kw):
    defaults = dict(model="garch", data=None, column=None, returns=False, start=None, end=None, date_format=None,
                    dayfirst=False)
    return argparse.Namespace(**(defaults | kw))


def test_the_command_line_keeps_missing_returns_for_a_model_that_supports_them(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("date,close\n2020-01-01,100\n2020-01-02,101\n2020-01-03,\n2020-01-06,99\n2020-01-07,98.5\n")
    kept = cli_data.load_returns(_args(data=str(path)), multivariate=False, supports_missing=True)
    expected = [100 * np.log(101 / 100), np.nan, np.nan, 100 * np.log(98.5 / 99)]
    np.testing.assert_allclose(kept.values.to_numpy(), expected, rtol=RTOL)
    assert any(note.startswith("kept 2 missing return(s) as NaN") for note in kept.notes)
    dropped = cli_data.load_returns(_args(model="wishart", data=str(path)), multivariate=False)
    np.testing.assert_allclose(dropped.values.to_numpy(), 100 * np.diff(np.log([100, 101, 99, 98.5])), rtol=RTOL)
    assert any("--model wishart does not support missing returns; each return spans the gap" in note
               for note in dropped.notes)

    returns = tmp_path / "returns.csv"
    returns.write_text("date,a,b\n2020-01-01,,\n2020-01-02,0.5,\n2020-01-03,,\n2020-01-06,-0.2,0.1\n")
    panel = cli_data.load_returns(_args(model="dcc", data=str(returns), returns=True), multivariate=True,
                                  supports_missing=True)
    assert list(panel.values.index.strftime("%m-%d")) == ["01-02", "01-06"]
    assert any(note == "left out 2 row(s) on which no return is observed" for note in panel.notes)
    assert any(note.startswith("kept 1 missing return(s) as NaN") for note in panel.notes)


@pytest.mark.xdist_group("cli")
def test_garch_by_maximum_likelihood_on_prices_with_a_gap(tmp_path, capsys):
    model = bayesvol.models.GARCH()
    sim = bayesvol.simulate(model, {"mu": 0.02, "omega": 0.05, "alpha": 0.1, "beta": 0.85}, num_timesteps=300,
                            seed=5)
    prices = 100 * np.exp(np.concatenate([[0.0], np.cumsum(sim.y)]) / 100)
    days = pd.bdate_range("2020-01-01", periods=prices.size)
    cells = [repr(float(p)) for p in prices]
    cells[120] = ""  # a missing price: the returns on days 120 and 121 are missing
    path = tmp_path / "prices.csv"
    path.write_text("date,close\n" + "".join(f"{d:%Y-%m-%d},{c}\n" for d, c in zip(days, cells, strict=True)))
    out = tmp_path / "out"
    assert main(["fit", "--model", "garch", "--data", str(path), "--method", "exact", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "300 returns (2020-01-02 .. " in printed
    assert "data: kept 2 missing return(s) as NaN: a missing price gives a missing return" in printed

    observed = prices.copy()
    observed[120] = np.nan
    y = pd.Series(100 * np.diff(np.log(observed)), index=days[1:])
    assert np.flatnonzero(np.isnan(y)).tolist() == [119, 120]
    np.testing.assert_allclose(y.dropna(), np.delete(np.array(sim.y), [119, 120]), rtol=1e-9, atol=1e-12)
    direct = bayesvol.fit(model, y)
    table = pd.read_csv(out / "estimates.csv", index_col=0)
    np.testing.assert_allclose(table["coef"], direct.flat(direct.params), rtol=1e-8)
    assert 0.6 < direct.params["beta"] < 1.0
