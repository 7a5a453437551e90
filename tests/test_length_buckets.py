"""Length buckets in maximum likelihood: data padded with missing steps give the unpadded fit, and every length
in a bucket reuses one compiled program.

The reference for the padded fit is the fit of the same series at its own length (``length_buckets=False``):
the two programs differ only in the number of zero terms each sum adds, so estimates, log-likelihood and
standard errors agree to rounding (the optimiser's path amplifies rounding in the last digits, hence the
relative tolerance of 1e-10 of a standard error rather than machine precision).
"""

from __future__ import annotations

import numpy as np
import pytest

import bayesvol
import bayesvol.inference.registry as registry
from bayesvol.inference._problem import bucket_length, pad_to_length
from bayesvol.models import GARCH, garch
from bayesvol.simulation import punch_holes


def test_bucket_lengths_are_few_and_at_most_a_quarter_longer():
    lengths = np.arange(1, 20_001)
    buckets = np.array([bucket_length(n) for n in lengths])
    assert np.all(buckets >= lengths)
    assert np.all(np.diff(buckets) >= 0)
    assert np.all(buckets[lengths > 64] < 1.25 * lengths[lengths > 64])
    assert {bucket_length(n) for n in (5000, 5120, 300, 20, 65, 4097)} == {5120, 320, 64, 80}
    # 2^k times 1, 1.25, 1.5, 1.75 from 64 up: 34 programs for every length from 1 to 20000.
    expected = sorted(int(2**k * f) for k in range(6, 15) for f in (1.0, 1.25, 1.5, 1.75))
    assert sorted(set(buckets.tolist())) == [b for b in expected if b <= 20480]
    assert len(set(buckets.tolist())) == 34


def test_padding_appends_missing_steps():
    values = np.arange(6.0).reshape(3, 2)
    padded = pad_to_length(values, 5)
    np.testing.assert_array_equal(padded[:3], values)
    assert padded.shape == (5, 2) and np.isnan(padded[3:]).all()
    with pytest.raises(ValueError, match="cannot pad 3 time steps to a length of 2"):
        pad_to_length(values, 2)


class _CountingLikelihood:
    """The GARCH exact likelihood, counting the times it is called: inside ``jit`` that is once per trace."""

    def __init__(self):
        self.calls = 0

    def __call__(self, model, params, y, **options):
        self.calls += 1
        return garch.exact_loglik(model, params, y, **options)


def test_lengths_in_one_bucket_share_one_program_and_give_the_unpadded_fit(monkeypatch):
    counter = _CountingLikelihood()
    monkeypatch.setitem(registry.TABLE, (GARCH, "exact"),
                        registry.Method(counter, length_buckets=True))
    model = GARCH()
    params = {"mu": 0.05, "omega": 0.1, "alpha": 0.1, "beta": 0.8}
    y = np.asarray(bayesvol.simulate(model, params, 110, seed=4).y)
    # Interior gaps as well as the padding: the series' own missing steps stay part of nobs.
    gapped = punch_holes(y, 0.05, seed=2)
    assert np.isnan(gapped).any() and bucket_length(100) == bucket_length(110) == 112

    bayesvol.fit(model, y[:100])
    traced = counter.calls
    assert traced > 0
    padded = bayesvol.fit(model, gapped)
    assert counter.calls == traced  # 110 steps: the program compiled for 100 (both padded to 112)

    unpadded = bayesvol.fit(model, gapped, length_buckets=False)
    assert counter.calls > traced  # the counter sees a new trace (the series at its own length)

    assert padded.nobs == unpadded.nobs == 110
    for name in model.param_names:
        tol = 1e-10 * unpadded.se[name]
        assert padded.params[name] == pytest.approx(unpadded.params[name], rel=1e-12, abs=tol)
        assert padded.se[name] == pytest.approx(unpadded.se[name], rel=1e-10)
        assert padded.robust_se[name] == pytest.approx(unpadded.robust_se[name], rel=1e-10)
    assert padded.loglik == pytest.approx(unpadded.loglik, rel=1e-12)
    assert padded.aic == pytest.approx(unpadded.aic, rel=1e-12)
    assert padded.bic == pytest.approx(unpadded.bic, rel=1e-12)
    assert padded.at_boundary == unpadded.at_boundary and padded.converged
    np.testing.assert_allclose(np.asarray(padded.conditional_volatility),
                               np.asarray(unpadded.conditional_volatility), rtol=1e-10)
    assert np.shape(padded.conditional_volatility) == (110,)


def test_length_buckets_must_be_a_flag():
    with pytest.raises(ValueError, match="length_buckets must be True or False, got 'yes'"):
        bayesvol.fit(GARCH(), np.random.default_rng(0).standard_normal(50), length_buckets="yes")
