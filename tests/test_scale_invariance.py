"""Maximum likelihood does not depend on the units of the data.

Each family's ``rescale_params`` is checked against the likelihood itself (the density of ``s * y`` at the
mapped parameters is that of ``y`` divided by ``s`` per element), and ``bayesvol.fit`` on ``s * y`` against
the fit on ``y``: estimates mapped by the hook, standard errors by the delta method with the hook's Jacobian
(taken here independently by ``jax.jacfwd``), the log-likelihood shifted by ``-n log s``, the same
``converged`` and ``at_boundary``. Both fits solve a standardised problem (the data divided by the power of
two nearest their standard deviation), the same one up to a factor between 0.71 and 1.41 in the data; each
stops where the gradient of the mean log-likelihood is below gtol = 1e-5, i.e. within about T * gtol = 0.004
standard errors of the optimum (T = 400). Estimates are compared to 0.01 standard errors, standard errors
(smooth in the point) to 2e-3 relative, log-likelihoods (flat at the optimum: second order in that
distance, 0.5 * 0.004^2 = 8e-6) to 1e-5.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bayesvol
from bayesvol.models import DCC, DFSV, EGARCH, GARCH, IGGARCH, SV, WishartSV
from bayesvol.models.wishart_sv import reference_params

SCALES = (1e-4, 1e4)
# Agreement of two fits of the same standardised problem, in standard errors (see the module docstring).
FIT_SE_TOL = 0.01
T = 400


def _simulated(model, params, num_timesteps, seed):
    return np.asarray(bayesvol.simulate(model, params, num_timesteps, seed=seed).y)


GARCH_PARAMS = {"mu": 0.03, "omega": 0.05, "alpha": 0.08, "beta": 0.88}
CASES = {
    "garch-normal": (GARCH(), GARCH_PARAMS, "exact", {}),
    "garch-t": (GARCH(dist="t"), dict(GARCH_PARAMS, nu=7.0), "exact", {}),
    # A stronger ARCH effect than GARCH_PARAMS: with the skewed t's two extra parameters the simulated series
    # of GARCH_PARAMS has its optimum on the stationarity edge (standard errors NaN), where equivariance in
    # standard errors cannot be checked.
    "garch-skewt": (GARCH(dist="skewt"), dict(GARCH_PARAMS, alpha=0.15, beta=0.75, nu=7.0, skew=-0.2), "exact", {}),
    "gjr": (GARCH(vol="gjr"), dict(GARCH_PARAMS, alpha=0.03, gamma=0.1), "exact", {}),
    "egarch": (EGARCH(), {"mu": 0.03, "omega": 0.01, "alpha": 0.15, "gamma": -0.08, "beta": 0.95}, "exact", {}),
    "iggarch": (IGGARCH(), {"lam": 0.02, "eta": -0.25, "w": 0.01, "b": -0.19, "c": 0.054, "a": 4.9}, "exact", {}),
    "sv-qml": (SV(), {"mu": -0.5, "phi": 0.95, "sigma": 0.25}, "qml", {}),
    "sv-bellman": (SV(), {"mu": -0.5, "phi": 0.95, "sigma": 0.25}, "bellman", {}),
    # ARCH effects strong enough that neither asset's alpha is estimated at zero on 300 returns.
    "dcc": (DCC(mean="constant"), {"mu": np.array([0.02, 0.01]), "omega": np.array([0.05, 0.1]),
                                   "alpha": np.array([0.12, 0.15]), "beta": np.array([0.8, 0.78]), "dcc_a": 0.05,
                                   "dcc_b": 0.9}, "exact", {}),
    "dfsv": (DFSV(num_factors=1), {"lambda_r": np.array([[1.0], [0.8], [0.5]]), "Phi_f": np.array([[0.2]]),
                                   "Phi_h": np.array([[0.95]]), "mu": np.array([-0.5]), "Q_h": np.array([[0.04]]),
                                   "sigma2": np.array([0.2, 0.3, 0.4])}, "bellman", {}),
}


def _hook_flat(model, params, scale):
    """The hook on a flat vector of the parameters in ``param_names`` order (for the Jacobian)."""
    names = model.param_names
    shapes = [np.shape(params[n]) for n in names]
    sizes = [int(np.prod(s, dtype=int)) for s in shapes]

    def fn(flat):
        values, position = {}, 0
        for n, shape, size in zip(names, shapes, sizes, strict=True):
            values[n] = jnp.reshape(flat[position:position + size], shape)
            position += size
        mapped = model.rescale_params(model.params_type(**values), scale)
        return jnp.concatenate([jnp.ravel(getattr(mapped, n)) for n in names])

    return fn, np.concatenate([np.ravel(np.asarray(params[n], dtype=float)) for n in names])


def _mapped(model, params, scale):
    mapped = model.rescale_params(bayesvol.models._base.as_params(model, params), scale)
    return {n: np.asarray(getattr(mapped, n)) for n in model.param_names}


@pytest.mark.parametrize("name", sorted(CASES) + [pytest.param("wishart-pf", marks=pytest.mark.slow)])
def test_hook_maps_the_likelihood(name):
    """log p(s y | hook(theta, s)) = log p(y | theta) - (observed elements) log s, for every family."""
    if name == "wishart-pf":
        model, params, method = WishartSV(), reference_params("percent"), "pf"
        options = {"num_particles": 64, "seed": 3}
        y = _simulated(model, params, 60, 0)
    else:
        model, params, method, options = CASES[name]
        y = _simulated(model, params, 150, 0)
    before = bayesvol.log_likelihood(model, params, y, method, **options)
    for scale in SCALES:
        after = bayesvol.log_likelihood(model, _mapped(model, params, scale), scale * y, method, **options)
        shift = 0.0 if method == "qml" else -y.size * np.log(scale)
        np.testing.assert_allclose(after, before + shift, rtol=1e-9, err_msg=f"scale {scale}")


FIT_CASES = ["garch-normal", "gjr", "iggarch", "sv-qml"] + [
    pytest.param(name, marks=pytest.mark.slow) for name in ("garch-t", "garch-skewt", "egarch", "dcc")]


_FITS: dict = {}


def _fits(name):
    """The family fitted on y and on s * y (T = 400; DCC 300), computed once per module."""
    if name not in _FITS:
        model, params, method, options = CASES[name]
        y = _simulated(model, params, 300 if name == "dcc" else T, 1)
        _FITS[name] = (model, y, {s: bayesvol.fit(model, s * y, method, warn=False, **options)
                                  for s in (1.0,) + SCALES})
    return _FITS[name]


@pytest.mark.parametrize("name", FIT_CASES)
@pytest.mark.parametrize("scale", SCALES)
def test_fit_is_equivariant(name, scale):
    model, y, results = _fits(name)
    base, scaled = results[1.0], results[scale]
    assert scaled.data_scale is not None
    _assert_mapped(model, base, scaled, scale)
    # Standard errors: the delta method with the hook's Jacobian at the estimate on y.
    fn, flat = _hook_flat(model, base.params, scale)
    jac = np.asarray(jax.jacfwd(fn)(jnp.asarray(flat)))
    for cov_name in ("cov", "robust_cov"):
        expected_cov = jac @ getattr(base, cov_name) @ jac.T
        np.testing.assert_allclose(np.diag(getattr(scaled, cov_name)), np.diag(expected_cov), rtol=2e-3,
                                   err_msg=cov_name)
    shift = 0.0 if base.method == "qml" else -y.size * np.log(scale)
    np.testing.assert_allclose(scaled.loglik, base.loglik + shift, rtol=0, atol=1e-5)
    assert scaled.converged == base.converged
    assert scaled.at_boundary == base.at_boundary


def _assert_mapped(model, base, scaled, scale):
    """Estimates on s * y are those on y mapped by the hook, to FIT_SE_TOL standard errors."""
    expected = _mapped(model, base.params, scale)
    for n in model.param_names:
        tolerance = FIT_SE_TOL * np.nan_to_num(np.asarray(scaled.se[n]), nan=0.0) + 1e-9 * np.abs(expected[n])
        assert np.all(np.abs(scaled.params[n] - expected[n]) <= tolerance), (n, scaled.params[n], expected[n])


def test_garch_tiny_units_are_estimated_as_percent_returns():
    """Returns times 1e-8: without rescaling the optimiser stalls (standard errors of 1e-34, no convergence);
    with it the estimates are those of the unscaled data, mapped."""
    model, params = GARCH(), GARCH_PARAMS
    y = _simulated(model, params, T, 2)
    base = bayesvol.fit(model, y)
    tiny = bayesvol.fit(model, 1e-8 * y)
    assert tiny.converged and base.converged
    assert tiny.at_boundary == base.at_boundary == []
    np.testing.assert_allclose(tiny.se["alpha"], base.se["alpha"], rtol=2e-3)
    np.testing.assert_allclose(tiny.se["omega"], 1e-16 * base.se["omega"], rtol=2e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = bayesvol.fit(model, 1e-8 * y, rescale=False)
    assert raw.data_scale is None
    assert not (raw.converged and np.isclose(raw.se["alpha"], base.se["alpha"], rtol=1e-2))


@settings(max_examples=4, deadline=None)
@given(log10_scale=st.floats(min_value=-6.0, max_value=6.0))
def test_garch_fit_is_equivariant_for_any_scale(log10_scale):
    model = GARCH()
    y = _simulated(model, GARCH_PARAMS, T, 4)
    scale = 10.0**log10_scale
    base, scaled = bayesvol.fit(model, y), bayesvol.fit(model, scale * y)
    _assert_mapped(model, base, scaled, scale)
    np.testing.assert_allclose(scaled.se["omega"], scale**2 * base.se["omega"], rtol=2e-3)
    np.testing.assert_allclose(scaled.loglik, base.loglik - y.size * np.log(scale), rtol=0, atol=1e-5)
    assert scaled.converged == base.converged and scaled.at_boundary == base.at_boundary


def test_batch_fit_is_equivariant_column_by_column():
    model = GARCH()
    y = _simulated(model, GARCH_PARAMS, T, 5)
    panel = np.column_stack([y, 1e-4 * y, 1e4 * y])
    result = bayesvol.fit(model, panel)
    for j, scale in enumerate((1.0, 1e-4, 1e4)):
        _assert_mapped(model, result[0], result[j], scale)
        np.testing.assert_allclose(result.se.iloc[j]["mu"], scale * result.se.iloc[0]["mu"], rtol=2e-3)
        np.testing.assert_allclose(result.loglik.iloc[j], result.loglik.iloc[0] - y.size * np.log(scale),
                                   rtol=0, atol=1e-5)
    assert result.converged.all() and result.at_boundary == {}
    np.testing.assert_allclose(result.data_scale.to_numpy(), 2.0 ** np.round(np.log2(np.std(panel, axis=0))))


def test_families_without_an_exact_map_fit_in_the_users_units():
    """IG-GARCH with a risk-free rate in the user's units (and a numeric pre-sample variance of GARCH) have no
    exact rescaling: ``fit`` then optimises in the user's units, which ``data_scale = None`` records, and the
    result is that of ``rescale=False``."""
    model = IGGARCH(r=0.01)
    params = CASES["iggarch"][1]
    y = _simulated(model, params, T, 6)
    assert model.rescale_params(bayesvol.models._base.as_params(model, params), 10.0) is None
    assert GARCH(variance_start=1.0).rescale_params(bayesvol.models._base.as_params(GARCH(), GARCH_PARAMS),
                                                    10.0) is None
    result = bayesvol.fit(model, y, warn=False)
    raw = bayesvol.fit(model, y, rescale=False, warn=False)
    assert result.data_scale is None
    assert result.params == raw.params and result.loglik == raw.loglik


def test_units_bound_in_a_prior_keep_the_users_units():
    """A prior whose support is bounded in the data's units (omega below 1) is not free of units: no rescaling."""
    import numpyro.distributions as ndist

    model = GARCH(priors={"omega": ndist.Uniform(0.0, 1.0)})
    params = bayesvol.models._base.as_params(model, GARCH_PARAMS)
    assert model.rescale_params(params, 10.0) is None
    assert GARCH().rescale_params(bayesvol.models._base.as_params(GARCH(), GARCH_PARAMS), 10.0) is not None


def test_rescale_flag_is_checked():
    with pytest.raises(ValueError, match="rescale must be True or False"):
        bayesvol.fit(GARCH(), np.ones(50), rescale="yes")
