"""One test per input check: what is accepted, what is refused and what the message says.

The walk over every entry point with each kind of bad input is ``test_bad_inputs.py``; this file checks
each rule on its own, including the inputs that must keep working.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayesvol
from bayesvol import _validation
from bayesvol.inference import registry, svi
from bayesvol.models import DCC, GARCH, SV

RNG = np.random.default_rng(3)
Y = RNG.standard_normal(40)
DATES = pd.date_range("2021-03-01", periods=40, freq="B")
SV_PARAMS = {"mu": 0.0, "phi": 0.9, "sigma": 0.3}
GARCH_PARAMS = {"mu": 0.0, "omega": 0.1, "alpha": 0.1, "beta": 0.8}
DCC_PARAMS = {"omega": np.full(2, 0.1), "alpha": np.full(2, 0.05), "beta": np.full(2, 0.9), "dcc_a": 0.05,
              "dcc_b": 0.9}


# --- real numbers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("y", [
    pd.Series(Y, dtype="Float64"),
    pd.Series(np.round(Y * 100).astype(int), dtype="Int64"),
    pd.Series(list(Y), dtype=object),
    list(Y),
    Y.astype(np.float32),
    jnp.asarray(Y),
], ids=["Float64", "Int64", "object-of-floats", "list", "float32", "jax"])
def test_real_numbers_of_any_numeric_type_are_accepted(y):
    np.testing.assert_allclose(_validation.as_returns(y).values, np.asarray(y, dtype=np.float64), rtol=1e-6)


def test_missing_values_of_nullable_types_are_reported_as_missing():
    y = pd.Series(list(Y), dtype="Float64", index=DATES)
    y.iloc[4] = pd.NA
    with pytest.raises(ValueError, match="non-finite value.*NaN at 2021-03-05"):
        _validation.as_returns(y)


@pytest.mark.parametrize(("y", "message"), [
    (np.arange(40).astype("datetime64[D]"), "dates, not returns"),
    (np.arange(40).astype("timedelta64[ms]"), "durations"),
    (Y + 0j, r"y\.real"),
    (Y > 0, "booleans are not returns"),
    (pd.Series(Y > 0, dtype="boolean"), "booleans are not returns"),
    (pd.Series(["a"] * 40, dtype="string"), r"'a' \(str\) at 0"),
    (pd.Series(pd.date_range("2020", periods=40, tz="UTC")), "dates, not returns"),
])
def test_types_that_are_not_real_numbers_are_refused(y, message):
    with pytest.raises(ValueError, match=f"y must be numeric.*{message}"):
        _validation.as_returns(y)


# --- the date index ------------------------------------------------------------------------------------
def test_a_sorted_date_index_is_kept_and_other_indexes_are_not_reordered():
    assert _validation.as_returns(pd.Series(Y, index=DATES)).index.equals(DATES)
    periods = pd.period_range("2000-01", periods=40, freq="M")
    assert _validation.as_returns(pd.Series(Y, index=periods)).index.equals(periods)
    # Labels that are not dates carry no order of time: they are taken as given.
    labels = pd.Index(np.arange(40)[::-1])
    np.testing.assert_array_equal(_validation.as_returns(pd.Series(Y, index=labels)).values, Y)


@pytest.mark.parametrize("model", [GARCH(), SV()], ids=["GARCH", "SV"])
def test_an_unsorted_date_index_is_refused_not_used_in_the_given_order(model):
    shuffled = pd.Series(Y, index=DATES).sample(frac=1.0, random_state=0)
    with pytest.raises(ValueError, match=r"not in increasing order .*y\.sort_index\(\)"):
        bayesvol.log_likelihood(model, GARCH_PARAMS if isinstance(model, GARCH) else SV_PARAMS, shuffled,
                                method="exact" if isinstance(model, GARCH) else "qml")
    ordered = shuffled.sort_index()
    assert np.isfinite(bayesvol.log_likelihood(GARCH(), GARCH_PARAMS, ordered))


def test_duplicate_dates_are_refused_for_series_and_panels():
    index = DATES[:39].insert(10, DATES[10])
    with pytest.raises(ValueError, match=r"duplicate dates \(1 repeated; first 2021-03-15, 2 rows\).*duplicated"):
        _validation.as_returns(pd.Series(Y, index=index))
    frame = pd.DataFrame(RNG.standard_normal((40, 2)), index=index, columns=["a", "b"])
    with pytest.raises(ValueError, match="duplicate dates"):
        bayesvol.log_likelihood(DCC(), DCC_PARAMS, frame)


# --- magnitude ---------------------------------------------------------------------------------------
def test_returns_whose_squares_overflow_are_refused_with_the_scale_to_divide_by():
    with pytest.raises(ValueError, match=r"as large as \d\.\d+e\+200 \(at 2021-03-\d\d\).*y / 1e200"):
        bayesvol.log_likelihood(GARCH(), GARCH_PARAMS, pd.Series(Y * 1e200, index=DATES))
    with pytest.raises(ValueError, match="overflow.*rescale y"):
        bayesvol.log_likelihood(DCC(), DCC_PARAMS, RNG.standard_normal((40, 2)) * 1e200)
    with pytest.raises(ValueError, match="underflow.*rescale y, e.g. y \\* 1e16"):
        bayesvol.log_likelihood(GARCH(), GARCH_PARAMS, Y * 1e-160)


def test_large_returns_whose_squares_are_representable_are_accepted():
    # Checked on the data alone: whether an estimate is invariant to the scale is the likelihood's business.
    assert _validation.as_returns(Y * 1e150).values.shape == (40,)
    assert _validation.as_returns(Y * 1e-150).values.shape == (40,)


# --- parameters ---------------------------------------------------------------------------------------
def test_a_vector_where_a_scalar_belongs_no_longer_gives_a_bellman_likelihood():
    bad = {**SV_PARAMS, "phi": np.array([0.9, 0.8])}
    with pytest.raises(ValueError, match=r"parameter 'phi' of SV.* must be a scalar \(shape \(\)\), got shape \(2,\)"):
        bayesvol.log_likelihood(SV(), bad, Y, method="bellman")


def test_each_family_declares_the_dimensions_of_its_parameters():
    assert SV().param_ndims() == {"mu": 0, "phi": 0, "sigma": 0}
    assert DCC().param_ndims() == {"omega": 1, "alpha": 1, "beta": 1, "dcc_a": 0, "dcc_b": 0}
    assert bayesvol.models.WishartSV().param_ndims() == {"nu": 0, "d": 0, "A": 2}
    assert set(bayesvol.models.DFSV().param_ndims().values()) == {1, 2}


# --- simulate: seeds and lengths ----------------------------------------------------------------------
@pytest.mark.parametrize(("model", "params"), [(SV(), SV_PARAMS), (DCC(), DCC_PARAMS)], ids=["SV", "DCC"])
def test_simulate_takes_integer_seeds_numpy_integers_none_and_keys(model, params):
    by_int = bayesvol.simulate(model, params, 12, seed=7).y
    np.testing.assert_array_equal(bayesvol.simulate(model, params, np.int64(12), seed=np.int64(7)).y, by_int)
    np.testing.assert_array_equal(bayesvol.simulate(model, params, np.int32(12), jax.random.PRNGKey(7)).y, by_int)
    np.testing.assert_array_equal(model.simulate(params, np.uint8(12), np.int16(7)).y, by_int)
    fresh = [bayesvol.simulate(model, params, 12, seed=None).y for _ in range(2)]
    assert fresh[0].shape[0] == 12 and not np.array_equal(fresh[0], fresh[1])
    if isinstance(model, SV):
        assert bayesvol.simulate(model, params, 12, seed=jax.random.key(7)).y.shape == (12,)


# --- the datasets reader ---------------------------------------------------------------------------------
def test_load_csv_sorts_dates_and_reads_missing_markers_as_missing(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("date,close\n2021-01-06,11\n2021-01-04,9\n2021-01-05,\n2021-01-07,.\n2021-01-08,NA\n")
    series = bayesvol.datasets.load_csv(path, column="close")
    assert list(series.index.strftime("%d")) == ["04", "05", "06", "07", "08"]
    np.testing.assert_array_equal(series.to_numpy(), [9.0, np.nan, 11.0, np.nan, np.nan])
    assert series.name == "close" and series.dtype == np.float64


def test_load_csv_reads_one_numeric_column_beside_a_text_one(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("date,ticker,close\n2021-01-04,XYZ,9\n2021-01-05,XYZ,10\n")
    assert list(bayesvol.datasets.load_csv(path, column="close")) == [9.0, 10.0]
    with pytest.raises(ValueError, match="column 'ticker' .* is not numeric: 'XYZ' on 2021-01-04 \\(line 2\\)"):
        bayesvol.datasets.load_csv(path)


# --- SVI -----------------------------------------------------------------------------------------------
def test_a_diverged_elbo_raises_with_the_cause_and_what_to_change():
    losses = np.r_[np.linspace(100.0, 50.0, 20), np.full(5, np.nan)]
    with pytest.raises(FloatingPointError, match=r"became nan at step 21 of 25 \(learning_rate=1000\.0\).*lower "
                                                 r"learning_rate"):
        svi.check_elbo(losses, 1000.0)


def test_an_elbo_still_falling_is_warned_about_and_a_flat_noisy_one_is_not():
    falling = 1000.0 - 0.5 * np.arange(400) + np.random.default_rng(0).normal(0.0, 1.0, 400)
    with pytest.warns(bayesvol.ConvergenceWarning, match="SVI has not converged.*raise num_steps"):
        svi.check_elbo(falling, 0.01)
    flat = 500.0 + np.random.default_rng(1).normal(0.0, 5.0, 400)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svi.check_elbo(flat, 0.01)
        svi.check_elbo(falling, 0.01, warn=False)
        svi.check_elbo(falling[:40], 0.01)  # too few steps to judge


@pytest.mark.slow
def test_svi_that_diverges_raises_instead_of_returning_nan_draws():
    with pytest.raises(FloatingPointError, match="SVI diverged.*learning_rate=1000.0.*lower learning_rate"):
        bayesvol.sample(GARCH(), Y, method="svi", num_steps=20, learning_rate=1e3, num_samples=5,
                        progress_bar=False)


@pytest.mark.slow
def test_svi_of_sv_that_diverges_raises_instead_of_numpyros_invalid_scale():
    y = bayesvol.datasets.load("gbpusd")[:100]
    with pytest.raises(FloatingPointError, match="SVI diverged"):
        bayesvol.sample(SV(), y, method="svi", num_steps=50, learning_rate=1e3, num_samples=5, progress_bar=False)


# --- the differentiable likelihood ---------------------------------------------------------------------
def test_log_likelihood_fn_of_an_exact_method_is_differentiable_and_compiles():
    f = bayesvol.log_likelihood_fn(GARCH(), Y)
    value, grad = jax.jit(jax.value_and_grad(f))(GARCH_PARAMS)
    assert float(value) == pytest.approx(bayesvol.log_likelihood(GARCH(), GARCH_PARAMS, Y), abs=1e-9)
    for name in GARCH_PARAMS:
        step = 1e-6
        up, down = ({**GARCH_PARAMS, name: GARCH_PARAMS[name] + s} for s in (step, -step))
        assert float(grad[name]) == pytest.approx(float(f(up) - f(down)) / (2 * step), rel=1e-5, abs=1e-5)
    pointwise = bayesvol.log_likelihood_fn(GARCH(), Y, pointwise=True)(GARCH_PARAMS)
    assert pointwise.shape == (40,)


def test_log_likelihood_fn_of_a_filter_method_is_differentiable_and_compiles():
    f = bayesvol.log_likelihood_fn(SV(), Y, method="pf", num_particles=16, seed=1)
    value, grad = jax.jit(jax.value_and_grad(f))(SV_PARAMS)
    assert float(value) == pytest.approx(
        bayesvol.log_likelihood(SV(), SV_PARAMS, Y, method="pf", num_particles=16, seed=1), abs=1e-8)
    assert all(np.isfinite(float(g)) for g in grad.values())


def test_a_nan_from_a_likelihood_method_is_an_error_not_a_result(monkeypatch):
    monkeypatch.setitem(registry.TABLE, (SV, "qml"), registry.Method(lambda model, params, y, **options:
                                                                         jnp.where(jnp.arange(y.shape[0]) == 3,
                                                                                   jnp.nan, 0.0)))
    with pytest.raises(ValueError, match=r"'qml' log-likelihood of SV .* is nan \(first at observation 3\).*broke "
                                         r"down numerically"):
        bayesvol.log_likelihood(SV(), SV_PARAMS, Y, method="qml")
