"""Standard errors of particle-filter maximum likelihood: from a smooth likelihood's Hessian, or marked unreliable."""

import pytest

import bayesvol
from bayesvol.inference import registry

NAMES = ("mu", "phi", "sigma")
START = {"mu": -0.7, "phi": 0.95, "sigma": 0.2}
# The particle filter's options of tests/test_filters_mle.py on the same data, so the suite compiles it once.
PF_OPTIONS = {"num_particles": 400, "start": START}


@pytest.fixture(scope="module")
def series(gbpusd):
    return gbpusd.to_numpy()[:300]


@pytest.mark.slow
def test_pf_standard_errors_agree_with_eis(series):
    eis_fit = bayesvol.fit(bayesvol.models.SV(), series, method="eis", start=START, warn=False)
    # After the EIS fit: the standard-error step reuses its compiled EIS gradient (same problem, same data).
    pf_fit = bayesvol.fit(bayesvol.models.SV(), series, method="pf", warn=False, **PF_OPTIONS)
    assert pf_fit.se_method == "eis" and pf_fit.method == "pf"
    assert pf_fit.warnings == []
    # The PF estimate differs from the EIS one by Monte Carlo noise, well inside a standard error, so the
    # curvature of the same smooth likelihood at the two points gives nearly the same standard errors; the
    # bound [0.5, 2] leaves room for the curvature's change over that distance.
    for name in NAMES:
        distance = abs(pf_fit.params[name] - eis_fit.params[name]) / eis_fit.se[name]
        assert distance < 1.0, (name, distance)
        ratio = pf_fit.se[name] / eis_fit.se[name]
        assert 0.5 < ratio < 2.0, (name, ratio)
    # The log-likelihood is the particle filter's at its estimate, within its Monte Carlo noise of the EIS one.
    assert pf_fit.loglik != eis_fit.loglik
    assert abs(pf_fit.loglik - eis_fit.loglik) < 4 * pf_fit.diagnostics["loglik_mc_sd"] + 1.0
    assert "of the eis likelihood at the pf estimate" in pf_fit.summary()


def test_pf_own_hessian_is_marked_unreliable(series):
    with pytest.warns(bayesvol.ConvergenceWarning, match="particle-filter likelihood"):
        own = bayesvol.fit(bayesvol.models.SV(), series, method="pf", se_method="pf", **PF_OPTIONS)
    assert own.se_method == "pf"
    assert not own.reliable
    message = next(text for text in own.warnings if "particle-filter likelihood" in text)
    # The remedy names the family's default smooth source first.
    assert "se_method='eis'" in message
    assert message in own.summary()
    assert "of the eis likelihood" not in own.summary()


def test_exact_likelihood_fit_has_no_rough_surface_warning(series):
    res = bayesvol.fit(bayesvol.models.GARCH(), series, warn=False)
    assert res.se_method == "exact"
    assert not any("particle-filter" in text for text in res.warnings)
    assert "particle-filter" not in res.summary()


def test_particle_filter_rows_are_marked():
    # The multivariate particle filters keep their own Hessian (no smooth likelihood of their family is the
    # default source), so fit() warns through the rough_surface flag, as for SV with se_method="pf"; the DFSV
    # fit's warning is checked in tests/test_dfsv_estimation.py.
    for model in (bayesvol.models.DFSV(num_factors=1), bayesvol.models.WishartSV()):
        row = registry.lookup(model, "pf")
        assert row.rough_surface and row.se_method is None
    assert registry.lookup(bayesvol.models.SV(), "pf").se_method == "eis"
    smooth = [name for name in registry.available(bayesvol.models.SV())
              if not registry.lookup(bayesvol.models.SV(), name).rough_surface]
    assert set(smooth) == {"bellman", "eis", "qml"}


def test_se_method_errors_are_clear(series):
    model = bayesvol.models.SV()
    with pytest.raises(ValueError, match="se_method must name a likelihood.*'qml'"):
        bayesvol.fit(model, series, method="pf", se_method="qml")
    with pytest.raises(ValueError, match="se_options must be a dict"):
        bayesvol.fit(model, series, method="pf", se_options=64)
    with pytest.raises(ValueError, match="se_options apply to a se_method other than"):
        bayesvol.fit(model, series, method="eis", se_options={"num_draws": 32})
    with pytest.raises(ValueError, match="se_differences must be"):
        bayesvol.fit(bayesvol.models.GARCH(), series, se_differences="central")
