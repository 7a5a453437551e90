import numpy as np
import pandas as pd
import pytest

import bayesvol
from bayesvol._validation import as_panel_values, as_returns

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.r_[RNG.normal(size=50), np.nan], "non-finite.*NaN at 50"),
        (np.r_[RNG.normal(size=50), np.inf], "non-finite.*inf"),
        (RNG.normal(size=(50, 2)), "one-dimensional.*shape \\(50, 2\\)"),
        (RNG.normal(size=(50, 1)), "ravel"),
        (RNG.normal(size=10), "10 observations; at least 20"),
        (np.full(100, 0.3), "constant"),
        (pd.DataFrame(RNG.normal(size=(50, 3))), "DataFrame with 3 columns"),
        (["a", "b"], "numeric"),
    ],
)
def test_bad_returns_are_named(y, match):
    with pytest.raises(ValueError, match=match):
        as_returns(y)
    if "NaN" in match:
        return  # SV takes NaN as a missing return (tests/test_missing_data.py); as_returns alone refuses it
    with pytest.raises(ValueError, match=match):
        bayesvol.sample(bayesvol.models.SV(), y, num_chains=1, num_warmup=5, num_samples=5, progress_bar=False)


def test_nan_position_reported_by_date():
    y = pd.Series(RNG.normal(size=30), index=pd.date_range("2020-01-01", periods=30))
    y.iloc[3] = np.nan
    with pytest.raises(ValueError, match="2020-01-04"):
        as_returns(y)


def test_bad_sampler_arguments(gbpusd):
    with pytest.raises(ValueError, match="method must be 'nuts', 'svi' or 'pmmh'"):
        bayesvol.sample(bayesvol.models.SV(), gbpusd, method="mh")
    with pytest.raises(ValueError, match="num_chains must be a positive integer"):
        bayesvol.sample(bayesvol.models.SV(), gbpusd, num_chains=0)
    with pytest.raises(ValueError, match="guide must be one of"):
        bayesvol.sample(bayesvol.models.SV(), gbpusd, method="svi", guide="flow")


def test_panel_values_keep_labels_and_reject_non_numeric():
    frame = pd.DataFrame(RNG.normal(size=(30, 2)), columns=["a", "b"],
                         index=pd.date_range("2000-01-03", periods=30, freq="B"))
    values, index, columns = as_panel_values(frame)
    np.testing.assert_array_equal(values, frame.to_numpy())
    assert index.equals(frame.index) and columns == ["a", "b"]
    values, index, columns = as_panel_values(frame["a"])
    assert values.shape == (30, 1) and columns == ["a"]
    values, index, columns = as_panel_values(np.arange(5.0))
    assert values.shape == (5, 1) and index is None and columns is None
    with pytest.raises(ValueError, match="panel must be numeric"):
        as_panel_values([["x", "y"]], name="panel")
