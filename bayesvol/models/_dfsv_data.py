"""Checks of a DFSV return panel, with missing returns (NaN) allowed."""

from __future__ import annotations

import math

import numpy as np

from bayesvol._validation import MIN_OBSERVATIONS
from bayesvol.models._panel_gaps import check_panel_gaps, observed_ptp

__all__ = ["check_dfsv_panel"]


def check_dfsv_panel(values, time, assets, num_factors: int, num_assets: int | None) -> None:
    """Raise ``ValueError`` naming the problem for a panel a DFSV model cannot take.

    NaN is a missing return (the filters update on the observed assets of each row); inf, a column missing
    on every row or observed fewer than 20 times, fewer than 20 rows, fewer assets than factors, a constant
    column, linearly dependent columns (checked on the fully observed rows when there are more of them than
    columns) or a column count other than ``num_assets`` are refused.
    """
    num_timesteps, n = values.shape
    check_panel_gaps(values, time, assets, MIN_OBSERVATIONS)
    if num_timesteps < MIN_OBSERVATIONS:
        raise ValueError(f"y has {num_timesteps} time steps; at least {MIN_OBSERVATIONS} are needed")
    if num_assets is not None and n != num_assets:
        raise ValueError(f"y has {n} columns but the model was built with num_assets={num_assets}")
    if n < num_factors:
        raise ValueError(f"y has {n} asset(s) but the model has {num_factors} factors: K factors "
                         "are not identified from fewer than K assets; lower num_factors")
    constant = np.flatnonzero(observed_ptp(values) == 0.0)
    if constant.size:
        raise ValueError(f"column {assets[constant[0]]!r} of y is constant; its variance cannot be estimated")
    complete = values[~np.isnan(values).any(axis=1)]
    if complete.shape[0] <= n:
        return
    centred = complete - complete.mean(axis=0)
    singular = np.linalg.svd(centred / centred.std(axis=0), compute_uv=False)
    if singular[-1] < 1e-8 * singular[0] * math.sqrt(complete.shape[0]):
        raise ValueError(f"the columns of y are linearly dependent (the {n} x {n} sample "
                         "covariance is singular), e.g. a series repeated or a cross rate that is a "
                         "combination of others; each asset needs its own idiosyncratic noise — drop the "
                         "redundant series")
