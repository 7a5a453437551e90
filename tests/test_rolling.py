"""Rolling re-estimation: refits agree with fits from scratch, forecasts with ``bayesvol.forecast``, batch with
sequential, a resumed run with an uninterrupted one; the closed-form tails against quadrature; bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import bayesvol
from bayesvol import _rolling_predictive as rp
from bayesvol.rolling import rolling_forecast

MODEL = bayesvol.models.GARCH()
TRUE = {"mu": 0.03, "omega": 0.1, "alpha": 0.1, "beta": 0.85}
WINDOW, EVERY = 200, 25
GTOL = 1e-7


@pytest.fixture(scope="module")
def returns():
    y = bayesvol.simulate(MODEL, TRUE, 300, seed=3).y
    return pd.Series(y, index=pd.bdate_range("2020-01-01", periods=300, name="date"), name="r")


@pytest.fixture(scope="module")
def run(returns, tmp_path_factory):
    out = tmp_path_factory.mktemp("rolling") / "run"
    result = rolling_forecast(MODEL, returns, window=WINDOW, refit_every=EVERY, horizon=3, out=out,
                              progress=False, fit_options={"gtol": GTOL})
    return result, out


def test_layout_of_the_result(run, returns):
    result, _ = run
    f = result.forecasts
    assert len(f) == 100 and f.index.equals(returns.index[WINDOW:])
    assert list(result.params.index) == list(returns.index[WINDOW::EVERY])
    assert (result.params["window_end"] == returns.index[WINDOW - 1::EVERY][:4]).all()
    np.testing.assert_array_equal(f["refit"], np.repeat(np.arange(4), EVERY))
    np.testing.assert_array_equal(f["return"], returns.iloc[WINDOW:])
    np.testing.assert_array_equal(f["hit_0.01"], f["return"] < -f["var_0.01"])
    assert (f["es_0.05"] > f["var_0.05"]).all() and (f["var_0.01"] > f["var_0.05"]).all()
    assert result.params["converged"].all()


def test_each_refit_equals_a_fit_from_scratch(run, returns):
    result, _ = run
    for date, row in result.params.iterrows():
        window = returns.loc[row["window_start"]:row["window_end"]]
        assert len(window) == WINDOW and returns.index.get_loc(date) == returns.index.get_loc(row["window_end"]) + 1
        cold = bayesvol.fit(MODEL, window, gtol=GTOL)
        assert abs(cold.loglik - row["loglik"]) < 1e-6
        for name in MODEL.param_names:
            np.testing.assert_allclose(row[name], cold.params[name], rtol=1e-4, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("position", [200, 213, 274, 299])
def test_forecasts_equal_forecast_on_the_truncated_data(run, returns, position):
    result, _ = run
    row = result.forecasts.iloc[position - WINDOW]
    refit = result.params.iloc[int(row["refit"])]
    params = {name: refit[name] for name in MODEL.param_names}
    start = returns.index.get_loc(refit["window_start"])
    fc = bayesvol.forecast(MODEL, params, returns.iloc[start:position], horizon=3, levels=None)
    np.testing.assert_allclose(row[["variance", "variance_h2", "variance_h3"]].to_numpy(dtype=float),
                               fc.variance["mean"], rtol=1e-10)
    assert row["mean"] == pytest.approx(fc.mean.iloc[0], rel=1e-12)
    sd = np.sqrt(row["variance"])
    assert row["var_0.01"] == pytest.approx(-(row["mean"] + sd * stats.norm.ppf(0.01)), rel=1e-12)
    assert row["es_0.05"] == pytest.approx(-row["mean"] + sd * stats.norm.pdf(stats.norm.ppf(0.05)) / 0.05, rel=1e-12)
    assert row["log_score"] == pytest.approx(stats.norm.logpdf(row["return"], row["mean"], sd), rel=1e-10)


def test_value_at_risk_agrees_with_the_simulated_forecast(run, returns):
    result, _ = run
    refit = result.params.iloc[1]
    params = {name: refit[name] for name in MODEL.param_names}
    start = returns.index.get_loc(refit["window_start"])
    fc = bayesvol.forecast(MODEL, params, returns.iloc[start:WINDOW + EVERY], levels=[0.01, 0.05],
                           num_paths=400_000, seed=1)
    row = result.forecasts.iloc[EVERY]
    assert row["var_0.01"] == pytest.approx(fc.value_at_risk[0.01].iloc[0], rel=5e-3)
    assert row["var_0.05"] == pytest.approx(fc.value_at_risk[0.05].iloc[0], rel=3e-3)


def test_resumed_run_equals_the_uninterrupted_one(run, returns, tmp_path, capsys):
    result, out = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    table = copy / "forecasts.csv"
    lines = table.read_text().splitlines(keepends=True)
    table.write_text("".join(lines[:-30]))  # the last refit and five dates of the one before lost
    resumed = rolling_forecast(MODEL, returns, window=WINDOW, refit_every=EVERY, horizon=3, out=copy,
                               progress=True, fit_options={"gtol": GTOL})
    assert "resuming after 2 of 4 windows" in capsys.readouterr().err
    pd.testing.assert_frame_equal(resumed.forecasts, result.forecasts)
    pd.testing.assert_frame_equal(resumed.params, result.params)
    # A completed run reads back without fitting anything.
    again = rolling_forecast(MODEL, returns, window=WINDOW, refit_every=EVERY, horizon=3, out=copy,
                             progress=False, fit_options={"gtol": GTOL})
    pd.testing.assert_frame_equal(again.forecasts, result.forecasts)


def test_a_write_cut_short_is_dropped(run, returns, tmp_path):
    result, out = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    with open(copy / "forecasts.csv", "a") as fh:
        fh.write("300,3,0.12")  # a torn row after the recorded end of the table
    resumed = rolling_forecast(MODEL, returns, window=WINDOW, refit_every=EVERY, horizon=3, out=copy,
                               progress=False, fit_options={"gtol": GTOL})
    pd.testing.assert_frame_equal(resumed.forecasts, result.forecasts)


def test_an_output_directory_of_other_settings_is_refused(run, returns):
    _, out = run
    with pytest.raises(ValueError, match="other settings.*refit_every: 25 there, 20 here"):
        rolling_forecast(MODEL, returns, window=WINDOW, refit_every=20, horizon=3, out=out, progress=False,
                         fit_options={"gtol": GTOL})
    with pytest.raises(ValueError, match="data: "):
        rolling_forecast(MODEL, returns * 2, window=WINDOW, refit_every=EVERY, horizon=3, out=out, progress=False,
                         fit_options={"gtol": GTOL})


def test_backtest_table_and_plot(run):
    result, _ = run
    table = result.backtest(num_simulations=500)
    assert table.index.names == ["level", "test"]
    tests = list(table.loc[0.05].index)
    assert tests[0] == "Kupiec POF" and "Acerbi-Szekely Z2" in tests and "McNeil-Frey exceedance residuals" in tests
    assert table.loc[(0.05, "Kupiec POF"), "exceptions"] == result.forecasts["hit_0.05"].sum()
    ax = result.plot(0.05)
    assert len(ax.get_lines()) >= 3
    with pytest.raises(ValueError, match="was not forecast"):
        result.plot(0.025)


def test_batch_equals_sequential(run, returns):
    result, _ = run
    batched = rolling_forecast(MODEL, returns, window=WINDOW, refit_every=EVERY, horizon=3, batch=True,
                               batch_size=3, progress=False, fit_options={"gtol": GTOL})
    assert batched.params["converged"].all()
    np.testing.assert_allclose(batched.params["loglik"], result.params["loglik"], atol=1e-6)
    for name in MODEL.param_names:
        np.testing.assert_allclose(batched.params[name], result.params[name], rtol=1e-4, atol=1e-8, err_msg=name)
    np.testing.assert_allclose(batched.forecasts["var_0.01"], result.forecasts["var_0.01"], rtol=1e-5)


def test_bad_input_is_refused(returns):
    def call(**kwargs):
        settings = {"window": WINDOW, "progress": False, **kwargs}
        return rolling_forecast(settings.pop("model", MODEL), returns, **settings)

    with pytest.raises(ValueError, match="window .300. must be shorter than the data .300 observations"):
        call(window=300)
    with pytest.raises(ValueError, match="window must be an integer of at least 20"):
        call(window=5)
    with pytest.raises(ValueError, match="refit_every must be an integer of at least 1"):
        call(refit_every=0)
    with pytest.raises(ValueError, match="horizon must be"):
        call(horizon=0)
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            call(levels=(0.01, bad))
    with pytest.raises(ValueError, match="tail probability"):
        call(levels=0.99)
    with pytest.raises(ValueError, match="batch=True needs rolling windows"):
        call(batch=True, expanding=True)
    with pytest.raises(ValueError, match="method 'pf' is not available"):
        call(method="pf")
    with pytest.raises(NotImplementedError, match="SV forecast"):
        call(model=bayesvol.models.SV())


def test_progress_line(returns, capsys):
    rolling_forecast(MODEL, returns.iloc[:230], window=WINDOW, refit_every=10, progress=True,
                     fit_options={"gtol": GTOL})
    err = capsys.readouterr().err
    assert "3/3 windows" in err and "ETA" in err and "elapsed" in err


# --- the closed-form tails ---------------------------------------------------------------------------

def _quadrature_tail(log_density, q, level, lower=-np.inf):
    return integrate.quad(lambda x: x * np.exp(log_density(x)), lower, q, limit=200, epsabs=1e-12)[0] / level


@pytest.mark.parametrize(("df", "skew"), [(7.0, -0.1), (4.5, 0.3), (30.0, -0.6), (5.0, 0.95)])
@pytest.mark.parametrize("level", [0.01, 0.05, 0.3])
def test_skewed_t_quantile_and_tail_mean(df, skew, level):
    law = bayesvol.distributions.SkewedStudentT(df, skew)
    q, m = rp._skewed_t_tail({"df": np.array(df), "skew": np.array(skew)}, level)
    assert q == pytest.approx(float(law.icdf(level)), abs=1e-10)
    assert m == pytest.approx(_quadrature_tail(lambda x: float(law.log_prob(x)), q, level), abs=1e-8)


def test_student_t_tail_equals_the_backtest_predictive():
    q, m = rp._student_t_tail({"df": np.array(6.0)}, 0.025)
    p = bayesvol.backtest.StudentTPredictive(6.0, 0.0, 1.0)
    assert -q == pytest.approx(p.value_at_risk(0.025), rel=1e-12)
    assert -m == pytest.approx(p.expected_shortfall(0.025), rel=1e-12)


@pytest.mark.parametrize("eta", [-0.25, 0.3])
@pytest.mark.parametrize("h", [0.4, 2.0])
def test_ig_return_quantile_and_tail_mean(eta, h):
    from bayesvol.models.iggarch import IGReturn

    law = IGReturn(0.1, eta, h)
    fields = {"loc": np.array(0.1), "eta": np.array(eta), "h": np.array(h)}
    for level in (0.01, 0.05):
        q, m = rp._ig_return_tail(fields, level)
        edge = 0.1 if eta > 0 else -np.inf  # R lies above loc for eta > 0 and below it for eta < 0

        def density(x):
            return float(law.log_prob(x))

        mass = integrate.quad(lambda x: np.exp(density(x)), edge, q, limit=200, epsabs=1e-13)[0]
        assert mass == pytest.approx(level, abs=1e-8)
        assert m == pytest.approx(_quadrature_tail(density, q, level, lower=edge), rel=1e-7)


# --- other families, expanding windows, samplers (slow: each compiles its own likelihood) ------------------

OTHER_FAMILIES = [
    (bayesvol.models.GARCH(vol="gjr", dist="skewt"),
     {"mu": 0.03, "omega": 0.05, "alpha": 0.05, "gamma": 0.1, "beta": 0.85, "nu": 5.0, "skew": -0.2}),
    (bayesvol.models.EGARCH(dist="t"),
     {"mu": 0.03, "omega": 0.0, "alpha": 0.15, "gamma": -0.08, "beta": 0.95, "nu": 6.0}),
    (bayesvol.models.IGGARCH(), {"lam": 0.02, "eta": -0.25, "w": 0.01, "b": -0.19, "c": 0.054, "a": 4.9}),
]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayesvol.ConvergenceWarning")
@pytest.mark.parametrize(("model", "params"), OTHER_FAMILIES, ids=lambda v: getattr(v, "describe", lambda: "")())
def test_other_families(model, params):
    y = bayesvol.simulate(model, params, 300, seed=5).y
    result = rolling_forecast(model, y, window=WINDOW, refit_every=50, progress=False, fit_options={"gtol": GTOL})
    f = result.forecasts
    columns = ["mean", "variance", "var_0.01", "es_0.01", "var_0.05", "es_0.05", "log_score"]
    assert np.isfinite(f[columns].to_numpy()).all()
    assert (f["es_0.01"] > f["var_0.01"]).all() and (f["var_0.01"] > f["var_0.05"]).all()
    last = result.params.iloc[-1]
    cold = bayesvol.fit(model, y[50:250], gtol=GTOL)  # the last refit's window
    assert abs(cold.loglik - last["loglik"]) < 1e-5
    params = {n: last[n] for n in model.param_names}
    at_refit = bayesvol.forecast(model, params, y[50:250], levels=None, method="analytic")
    assert f["variance"].iloc[-50] == pytest.approx(at_refit.variance["mean"].iloc[0], rel=1e-10)
    # Between refits: IG-GARCH's start value is the variance of the whole sample it is given, so a forecast on
    # y[50:280] starts elsewhere than the estimate did (an effect that decays along the filter).
    between = bayesvol.forecast(model, params, y[50:280], levels=None, method="analytic")
    close = 0.05 if isinstance(model, bayesvol.models.IGGARCH) else 1e-10
    assert f["variance"].iloc[-20] == pytest.approx(between.variance["mean"].iloc[0], rel=close)
    table = result.backtest(num_simulations=200)
    assert np.isfinite(table.loc[(0.05, "Acerbi-Szekely Z2"), "statistic"])


@pytest.mark.slow
def test_expanding_windows(returns):
    y = returns.iloc[:260]
    result = rolling_forecast(MODEL, y, window=WINDOW, expanding=True, refit_every=30, progress=False,
                              fit_options={"gtol": GTOL})
    assert list(result.params["window_start"]) == [y.index[0]] * 2
    for k, (_, row) in enumerate(result.params.iterrows()):
        end = WINDOW + 30 * k
        cold = bayesvol.fit(MODEL, y.iloc[:end], gtol=GTOL)
        assert abs(cold.loglik - row["loglik"]) < 1e-6
        params = {n: row[n] for n in MODEL.param_names}
        fc = bayesvol.forecast(MODEL, params, y.iloc[:end + 7], levels=None)
        assert result.forecasts["variance"].iloc[30 * k + 7] == pytest.approx(fc.variance["mean"].iloc[0], rel=1e-10)


@pytest.mark.slow
def test_posterior_rolling_forecast_and_resume(returns, tmp_path):
    y = returns.iloc[:250]
    settings = {"window": WINDOW, "refit_every": 25, "method": "svi", "progress": False, "num_draws": 50,
                "num_paths": 2000, "sampler_options": {"num_steps": 300, "num_samples": 100}}
    result = rolling_forecast(MODEL, y, out=tmp_path / "svi", **settings)
    f = result.forecasts
    assert result.draws.shape == (2000, 50)
    assert (f["es_0.01"] > f["var_0.01"]).all() and np.isfinite(f["log_score"]).all()
    assert set(result.params.columns) == {"window_start", "window_end", *MODEL.param_names}
    table = tmp_path / "svi" / "forecasts.csv"
    table.write_text("".join(table.read_text().splitlines(keepends=True)[:-10]))
    resumed = rolling_forecast(MODEL, y, out=tmp_path / "svi", **settings)
    pd.testing.assert_frame_equal(resumed.forecasts, f)
    np.testing.assert_array_equal(resumed.draws, result.draws)
    assert "Acerbi-Szekely Z2" in resumed.backtest(levels=0.05, num_simulations=200).loc[0.05].index
