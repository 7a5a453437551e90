"""``bayesvol.forecast`` for the multivariate models: the same entry point as for variances, one step ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesvol
from bayesvol.filters import wishart_methods
from bayesvol.models.wishart_sv import WishartSV

DCC_PARAMS = {"omega": [0.05, 0.03], "alpha": [0.06, 0.08], "beta": [0.90, 0.88], "dcc_a": 0.05, "dcc_b": 0.9}
WISHART_PARAMS = {"nu": 9.0, "d": 0.6, "A": np.array([[1.2, 0.3], [0.3, 0.8]])}


@pytest.fixture(scope="module")
def dcc_data():
    sim = bayesvol.simulate(bayesvol.models.DCC(), DCC_PARAMS, 300, seed=2)
    return pd.DataFrame(sim.y, columns=["usd", "eur"], index=pd.bdate_range("2020-01-01", periods=300))


def test_dcc_forecast_is_the_filtered_next_covariance(dcc_data):
    model = bayesvol.models.DCC()
    fc = bayesvol.forecast(model, DCC_PARAMS, dcc_data)
    expected = model.filtered_covariances(DCC_PARAMS, dcc_data)[-1]
    np.testing.assert_allclose(fc.covariance.to_numpy(), expected, rtol=1e-12)
    assert list(fc.covariance.columns) == ["usd", "eur"] and fc.method == "filter" and fc.source == "parameters"
    np.testing.assert_allclose(fc.volatility.to_numpy(), np.sqrt(np.diag(expected)), rtol=1e-12)
    np.testing.assert_allclose(np.diag(fc.correlation.to_numpy()), 1.0, rtol=1e-12)


def test_wishart_forecast_matches_the_filter_function():
    model = WishartSV()
    y = bayesvol.simulate(model, WISHART_PARAMS, 200, seed=1).y
    fc = bayesvol.forecast(model, WISHART_PARAMS, y, method="pf", num_particles=500)
    expected = wishart_methods.forecast_covariance(model, WISHART_PARAMS, y, method="pf", num_particles=500)
    np.testing.assert_allclose(fc.covariance.to_numpy(), expected, rtol=1e-12)
    assert fc.method == "pf"


def test_covariance_forecasts_are_one_step_and_refuse_foreign_options(dcc_data):
    model = bayesvol.models.DCC()
    with pytest.raises(ValueError, match="one step ahead"):
        bayesvol.forecast(model, DCC_PARAMS, dcc_data, horizon=2)
    with pytest.raises(ValueError, match="method='filter'"):
        bayesvol.forecast(model, DCC_PARAMS, dcc_data, method="eis")
    with pytest.raises(ValueError, match="covariance model"):
        bayesvol.forecast(bayesvol.models.SV(), {"mu": 0.0, "phi": 0.9, "sigma": 0.2}, dcc_data["usd"])
