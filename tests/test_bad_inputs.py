"""Every public entry point with each kind of bad input: a clear error that names the argument, never a
silent NaN, a wrong answer or an error from deep inside JAX.

The entry points are ``fit``, ``sample``, ``log_likelihood``, ``log_likelihood_fn``, ``simulate``,
``forecast``, the filters' public functions, ``datasets.load_csv`` and the command line. Every check runs
before anything is compiled, so the whole walk takes seconds.
"""

from __future__ import annotations

import re

import jax
import numpy as np
import pandas as pd
import pytest

import bayesvol
from bayesvol import filters
from bayesvol.cli import main
from bayesvol.filters import dfsv_methods
from bayesvol.inference import registry
from bayesvol.models import DCC, DFSV, EGARCH, GARCH, IGGARCH, SV, WishartSV

RNG = np.random.default_rng(0)
Y = RNG.standard_normal(30)
PANEL = RNG.standard_normal((30, 3))
DATES = pd.date_range("2020-01-01", periods=30, freq="B")
SV_PARAMS = {"mu": 0.0, "phi": 0.9, "sigma": 0.3}
GARCH_PARAMS = {"mu": 0.0, "omega": 0.1, "alpha": 0.1, "beta": 0.8}
QUICK = {"num_chains": 1, "num_warmup": 1, "num_samples": 1, "progress_bar": False}


def _with_text(values, position, text):
    out = pd.Series(values, index=DATES[: len(values)], dtype=object)
    out.iloc[position] = text
    return out


# --- data: one series --------------------------------------------------------------------------------
BAD_SERIES = {
    "datetime64": (np.arange(30).astype("datetime64[D]"), r"y must be numeric .*datetime64.*dates, not returns"),
    "timedelta64": (np.arange(30).astype("timedelta64[s]"), r"y must be numeric .*timedelta64.*durations"),
    "complex": (Y + 1j, r"y must be numeric .*complex.*y\.real"),
    "bool": (Y > 0, r"y must be numeric .*bool.*astype\(float\)"),
    "strings": (np.array(["0.1"] * 30), r"y must be numeric .*'0\.1' \(str\) at position 0"),
    "text-cell": (_with_text(Y, 5, "1O2.5"), r"y must be numeric .*'1O2\.5' \(str\) at 2020-01-08"),
    "unsorted-dates": (pd.Series(Y, index=DATES[::-1]), r"date index of y is not in increasing order.*"
                                                        r"y\.sort_index\(\)"),
    "duplicate-dates": (pd.Series(Y, index=DATES[:29].insert(5, DATES[5])),
                        r"date index of y has duplicate dates .*first 2020-01-08, 2 rows"),
    "missing-date": (pd.Series(Y, index=DATES.insert(3, pd.NaT)[:30]), r"date index of y has a missing date"),
    "overflow": (Y * 1e200, r"y holds values as large as .*e\+200.*overflow.*rescale y, e\.g\. y / 1e200"),
    "underflow": (Y * 1e-160, r"y holds no value larger than .*underflow.*rescale y"),
}

SERIES_ENTRY_POINTS = {
    "log_likelihood": lambda y: bayesvol.log_likelihood(GARCH(), GARCH_PARAMS, y),
    "log_likelihood_fn": lambda y: bayesvol.log_likelihood_fn(SV(), y, method="bellman"),
    "fit": lambda y: bayesvol.fit(GARCH(), y),
    "sample": lambda y: bayesvol.sample(SV(), y, **QUICK),
    "sample-svi": lambda y: bayesvol.sample(EGARCH(), y, method="svi", num_steps=1, **QUICK),
    "forecast": lambda y: bayesvol.forecast(GARCH(), GARCH_PARAMS, y),
    "particle_filter": lambda y: filters.particle_filter(SV(), SV_PARAMS, y, 0, 16),
    "efficient_importance_sampling": lambda y: filters.efficient_importance_sampling(SV(), SV_PARAMS, y, 0, 8),
    "bellman_filter": lambda y: filters.bellman_filter(SV(), SV_PARAMS, y),
    "sv_qml_filter": lambda y: filters.sv_qml_filter(SV(), SV_PARAMS, y),
}


@pytest.mark.parametrize("entry", list(SERIES_ENTRY_POINTS))
@pytest.mark.parametrize("kind", list(BAD_SERIES))
def test_bad_return_series_are_named_at_every_entry_point(entry, kind):
    y, message = BAD_SERIES[kind]
    with pytest.raises(ValueError, match=message):
        SERIES_ENTRY_POINTS[entry](y)


# --- data: panels ------------------------------------------------------------------------------------
def _frame(values=PANEL, index=DATES):
    return pd.DataFrame(values, index=index, columns=["a", "b", "c"])


def _frame_with(column, values):
    frame = _frame()
    frame[column] = values
    return frame


BAD_PANELS = {
    "unsorted-dates": (_frame(index=DATES[::-1]), r"date index of y is not in increasing order.*sort_index"),
    "duplicate-dates": (_frame(index=DATES[:29].insert(7, DATES[7])), r"date index of y has duplicate dates"),
    "bool-column": (_frame_with("b", PANEL[:, 1] > 0), r"column 'b' of y must be numeric .*bool"),
    "datetime-column": (_frame_with("c", DATES), r"column 'c' of y must be numeric .*datetime64"),
    "text-column": (_frame_with("a", ["x"] * 30), r"column 'a' of y must be numeric .*'x' \(str\) at 2020-01-01"),
    "complex-array": (PANEL + 1j, r"y must be numeric .*complex"),
    "overflow": (_frame(PANEL * 1e200), r"y holds values as large as .*overflow.*rescale y"),
}

DCC_PARAMS = {"omega": np.full(3, 0.1), "alpha": np.full(3, 0.05), "beta": np.full(3, 0.9), "dcc_a": 0.05,
              "dcc_b": 0.9}
WISHART_PARAMS = {"nu": 8.0, "d": 0.5, "A": np.eye(3)}
DFSV_PARAMS = {"lambda_r": np.array([[1.0], [0.5], [0.3]]), "Phi_f": np.array([[0.5]]), "Phi_h": np.array([[0.9]]),
               "mu": np.array([0.0]), "Q_h": np.array([[0.1]]), "sigma2": np.full(3, 0.5)}

PANEL_ENTRY_POINTS = {
    "log_likelihood-DCC": lambda y: bayesvol.log_likelihood(DCC(), DCC_PARAMS, y),
    "log_likelihood-WishartSV": lambda y: bayesvol.log_likelihood(WishartSV(), WISHART_PARAMS, y, method="pf"),
    "log_likelihood-DFSV": lambda y: bayesvol.log_likelihood(DFSV(), DFSV_PARAMS, y, method="bellman"),
    "fit-DFSV": lambda y: bayesvol.fit(DFSV(), y, method="bellman"),
    "fit-GARCH-batch": lambda y: bayesvol.fit(GARCH(), y),
    "sample-DCC": lambda y: bayesvol.sample(DCC(), y, **QUICK),
    "forecast-DCC": lambda y: bayesvol.forecast(DCC(), DCC_PARAMS, y),
    "filter_states-DFSV": lambda y: dfsv_methods.filter_states(DFSV(), DFSV_PARAMS, y),
}


@pytest.mark.parametrize("entry", list(PANEL_ENTRY_POINTS))
@pytest.mark.parametrize("kind", list(BAD_PANELS))
def test_bad_return_panels_are_named_at_every_entry_point(entry, kind):
    y, message = BAD_PANELS[kind]
    with pytest.raises(ValueError, match=message):
        PANEL_ENTRY_POINTS[entry](y)


# --- parameters ---------------------------------------------------------------------------------------
def _family_inputs():
    """Each public family with data it accepts and valid parameters (its own first start value)."""
    out = []
    for family in (SV, GARCH, EGARCH, IGGARCH, DCC, DFSV, WishartSV):
        multivariate = family in (DCC, DFSV, WishartSV)
        data = np.random.default_rng(1).standard_normal((60, 3) if multivariate else 60)
        model = family().bind_data(data)
        start = model.start_values(model.validate_data(data).values)[0]
        out.append((model, data, {name: np.asarray(value) for name, value in start.items()}))
    return out


FAMILIES = _family_inputs()


def _one_dimension_too_many(model, params):
    """A parameter with an extra dimension: a vector where a scalar belongs (a scalar one where there is one)."""
    ndims = model.param_ndims()
    name = next((n for n in model.param_names if ndims[n] == 0), model.param_names[0])
    bad = np.stack([params[name], params[name]])
    return name, {**params, name: bad}, f"parameter '{name}' of .* must be .*got shape {re.escape(str(bad.shape))}"


@pytest.mark.parametrize(("model", "data", "params"), FAMILIES, ids=[type(m).__name__ for m, _, _ in FAMILIES])
def test_a_parameter_of_the_wrong_shape_is_named_by_every_method(model, data, params):
    name, bad, message = _one_dimension_too_many(model, params)
    methods = [m for m in registry.available(model) if registry.lookup(model, m).loglik is not None]
    for method in methods:
        with pytest.raises(ValueError, match=message):
            bayesvol.log_likelihood(model, bad, data, method=method)
        with pytest.raises(ValueError, match=message):
            jax.jit(bayesvol.log_likelihood_fn(model, data, method=method))(bad)
    with pytest.raises(ValueError, match=message):
        bayesvol.simulate(model, bad, 10)
    with pytest.raises(ValueError, match=message):
        bayesvol.fit(model, data, methods[0], start=bad)


def test_a_parameter_of_the_wrong_shape_is_named_by_forecast_and_the_filters():
    message = r"parameter 'phi' of SV.* must be a scalar \(shape \(\)\), got shape \(2,\): \[0\.9, 0\.8\]"
    bad = {**SV_PARAMS, "phi": np.array([0.9, 0.8])}
    for run in (lambda: filters.particle_filter(SV(), bad, Y, 0, 16),
                lambda: filters.efficient_importance_sampling(SV(), bad, Y, 0, 8),
                lambda: filters.bellman_filter(SV(), bad, Y),
                lambda: filters.sv_qml_filter(SV(), bad, Y)):
        with pytest.raises(ValueError, match=message):
            run()
    with pytest.raises(ValueError, match=r"parameter 'omega' of GARCH.* must be a scalar"):
        bayesvol.forecast(GARCH(), {**GARCH_PARAMS, "omega": [0.1, 0.2]}, Y)
    with pytest.raises(ValueError, match=r"parameter 'dcc_a' of DCC.* must be a scalar"):
        bayesvol.forecast(DCC(), {**DCC_PARAMS, "dcc_a": np.array([0.05, 0.05])}, PANEL)
    with pytest.raises(ValueError, match=r"parameter 'alpha' of DCC.* must be a vector"):
        bayesvol.log_likelihood(DCC(), {**DCC_PARAMS, "alpha": 0.05}, PANEL)


@pytest.mark.parametrize("value", ["0.9", True, 0.9 + 0.1j])
def test_a_parameter_that_is_not_a_real_number_is_named(value):
    with pytest.raises(ValueError, match="parameter 'phi' must be numeric"):
        bayesvol.log_likelihood(SV(), {**SV_PARAMS, "phi": value}, Y, method="qml")


# --- options: counts and seeds -------------------------------------------------------------------------
@pytest.mark.parametrize(("num_timesteps", "message"), [
    (1, "num_timesteps must be an integer >= 2, got 1"),
    (0, "num_timesteps must be an integer >= 2, got 0"),
    (-5, "num_timesteps must be an integer >= 2, got -5"),
    (2.5, r"num_timesteps must be an integer >= 2, got 2\.5 \(float\)"),
    (10.0, r"num_timesteps .* got 10\.0 \(float\); pass 10"),
    (True, r"num_timesteps .* got True \(bool\)"),
    ("10", r"num_timesteps .* got '10' \(str\)"),
])
def test_bad_num_timesteps_is_named(num_timesteps, message):
    for model, _, params in FAMILIES:
        with pytest.raises(ValueError, match=message):
            bayesvol.simulate(model, params, num_timesteps)
        with pytest.raises(ValueError, match=message):
            model.simulate(params, num_timesteps, 0)


@pytest.mark.parametrize("seed", [1.5, "seed", True, np.array([1, 2, 3])])
def test_bad_seeds_are_named(seed):
    message = r"must be an integer, None \(a fresh random seed\) or a jax\.random key"
    with pytest.raises(ValueError, match="seed " + message):
        bayesvol.simulate(SV(), SV_PARAMS, 10, seed=seed)
    with pytest.raises(ValueError, match="key " + message):
        filters.particle_filter(SV(), SV_PARAMS, Y, seed, 16)
    with pytest.raises(ValueError, match="seed " + message):
        bayesvol.forecast(GARCH(), GARCH_PARAMS, Y, seed=seed)
    with pytest.raises(ValueError, match=r"seed must be an integer or None"):
        bayesvol.sample(SV(), Y, seed=seed, **QUICK)


@pytest.mark.parametrize(("options", "message"), [
    ({"maxiter": 0}, "maxiter must be an integer >= 1"),
    ({"num_starts": 1.5}, "num_starts must be an integer >= 1"),
    ({"gtol": -1e-5}, "gtol must be a positive number"),
])
def test_bad_fit_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        bayesvol.fit(GARCH(), Y, **options)


@pytest.mark.parametrize(("options", "message"), [
    ({"num_warmup": -1}, "num_warmup must be an integer >= 0"),
    ({"num_samples": 2.0}, "num_samples must be a positive integer"),
    ({"method": "svi", "learning_rate": -0.1}, "learning_rate must be a positive finite number"),
    ({"method": "svi", "num_steps": 0}, "num_steps must be a positive integer"),
])
def test_bad_sampler_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        bayesvol.sample(SV(), Y, **{**QUICK, **options})


def test_the_log_likelihood_refuses_traced_values_and_names_the_differentiable_function():
    with pytest.raises(TypeError, match=r"use f = bayesvol\.log_likelihood_fn\(model, y, method=\.\.\.\)"):
        jax.grad(lambda p: bayesvol.log_likelihood(GARCH(), p, Y))(GARCH_PARAMS)
    with pytest.raises(TypeError, match="log_likelihood_fn"):
        jax.jit(lambda p: bayesvol.log_likelihood(SV(), p, Y, method="qml"))(SV_PARAMS)


# --- files and the command line ---------------------------------------------------------------------------
def _csv(tmp_path, text, name="prices.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_csv_names_a_text_cell_and_a_repeated_date(tmp_path):
    typo = _csv(tmp_path, "date,close\n2020-01-03,102.5\n2020-01-02,1O2.5\n2020-01-06,103\n")
    with pytest.raises(ValueError, match=r"column 'close' of .* is not numeric: '1O2\.5' on 2020-01-02 \(line 3\)"):
        bayesvol.datasets.load_csv(typo, column="close")
    with pytest.raises(ValueError, match=r"column 'close' .* not numeric.*choose them \(column="):
        bayesvol.datasets.load_csv(typo)
    repeated = _csv(tmp_path, "date,close\n2020-01-02,1\n2020-01-03,2\n2020-01-02,3\n", "repeated.csv")
    with pytest.raises(ValueError, match=r"date 2020-01-02 appears more than once .* \(lines 2, 4\)"):
        bayesvol.datasets.load_csv(repeated, column="close")
    undated = _csv(tmp_path, "date,close\n2020-01-02,1\n,2\n", "undated.csv")
    with pytest.raises(ValueError, match=r"line 3 of .* has no date in column 'date'"):
        bayesvol.datasets.load_csv(undated)


@pytest.mark.parametrize(("argv", "message"), [
    (["--column", "ticker"], "column 'ticker' of '.*' is not numeric: 'ABC' on 2020-01-01"),
    (["--column", "close", "--start", "2030-01-01"], "--start 2030-01-01 is after the last date of "
                                                      "prices.csv:close \\(2020-02-11\\)"),
    (["--column", "close", "--end", "2019-01-01"], "--end 2019-01-01 is before the first date"),
    (["--column", "close", "--start", "2020-02-01", "--end", "2020-01-15"], "--start 2020-02-01 is after --end"),
    (["--column", "close", "--start", "soon"], "--start 'soon' is not a date; write it as YYYY-MM-DD"),
])
def test_the_command_line_names_the_bad_column_or_date(argv, message, tmp_path, capsys):
    rows = "".join(f"{day:%Y-%m-%d},{100 + i},ABC\n" for i, day in enumerate(DATES))
    path = _csv(tmp_path, "date,close,ticker\n" + rows)
    assert main(["fit", "--data", str(path), *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bayesvol: error:") and "\n" not in err
    assert re.search(message, err), err


def test_the_command_line_names_a_start_after_the_bundled_data(tmp_path, capsys):
    argv = ["fit", "--data", "fred_h10", "--column", "DEXUSUK", "--start", "2030-01-01", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--start 2030-01-01 is after the last date of fred_h10:DEXUSUK (2014-08-08)" in capsys.readouterr().err
