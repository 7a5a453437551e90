"""Property-based checks of every family's log-likelihood: over data and parameters inside the support, the
public log-likelihood is a number (never NaN) or a ValueError that says why, and gradients are finite.

Each family runs a few examples at one data length, so its likelihood compiles once.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import bayesvol
from bayesvol.models import DCC, DFSV, EGARCH, GARCH, IGGARCH, SV, WishartSV

T = 25
SETTINGS = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def unit(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def returns(draw, columns=None):
    """Returns of any order of magnitude from 1e-3 to 1e3, with zeros, repeats and outliers allowed."""
    shape = (T,) if columns is None else (T, columns)
    values = draw(arrays(np.float64, shape, elements=unit(-8.0, 8.0)))
    return values * 10.0 ** draw(st.integers(-3, 3))


def sv_params(draw):
    return {"mu": draw(unit(-4.0, 4.0)), "phi": draw(unit(-0.95, 0.98)), "sigma": draw(unit(0.05, 1.5))}


def gjr_params(draw):
    alpha, gamma = draw(unit(0.0, 0.2)), draw(unit(0.0, 0.2))
    return {"mu": draw(unit(-1.0, 1.0)), "omega": draw(unit(1e-3, 2.0)), "alpha": alpha, "gamma": gamma,
            "beta": draw(unit(0.0, 0.95 - alpha - gamma)), "nu": draw(unit(2.5, 40.0)), "skew": draw(unit(-0.6, 0.6))}


def egarch_params(draw):
    # Negative size effects included: with alpha well below zero a large shock drives the log-variance down
    # without bound; the cap on the standardised residual keeps the value and the gradient finite.
    return {"mu": draw(unit(-1.0, 1.0)), "omega": draw(unit(-1.0, 1.0)), "alpha": draw(unit(-0.5, 0.5)),
            "gamma": draw(unit(-0.3, 0.3)), "beta": draw(unit(0.0, 0.98))}


def iggarch_params(draw):
    # Stationary by construction: persistence b + c / eta^2 + a eta^2 below 0.95.
    eta, share_a, share_c = -draw(unit(1e-3, 0.05)), draw(unit(0.05, 0.5)), draw(unit(0.0, 0.3))
    return {"lam": draw(unit(-1.0, 1.0)), "eta": eta, "w": draw(unit(1e-4, 0.05)),
            "b": draw(unit(-0.2, 0.95 - share_a - share_c)), "c": share_c * eta**2, "a": share_a / eta**2}


def dcc_params(draw):
    return {"omega": np.array([draw(unit(1e-3, 1.0)) for _ in range(2)]),
            "alpha": np.array([draw(unit(0.01, 0.2)) for _ in range(2)]),
            "beta": np.array([draw(unit(0.0, 0.75)) for _ in range(2)]),
            "dcc_a": draw(unit(0.01, 0.1)), "dcc_b": draw(unit(0.0, 0.85))}


def dfsv_params(draw):
    return {"lambda_r": np.array([[1.0], [draw(unit(-2.0, 2.0))], [draw(unit(-2.0, 2.0))]]),
            "Phi_f": np.array([[draw(unit(-0.9, 0.9))]]), "Phi_h": np.array([[draw(unit(-0.9, 0.97))]]),
            "mu": np.array([draw(unit(-2.0, 2.0))]), "Q_h": np.array([[draw(unit(0.01, 1.0))]]),
            "sigma2": np.array([draw(unit(0.05, 2.0)) for _ in range(3)])}


def wishart_params(draw):
    a1, a2, r = draw(unit(0.1, 5.0)), draw(unit(0.1, 5.0)), draw(unit(-0.5, 0.5))
    off = r * np.sqrt(a1 * a2)
    return {"nu": draw(unit(4.0, 30.0)), "d": draw(unit(0.05, 0.9)), "A": np.array([[a1, off], [off, a2]])}


CASES = {
    "SV-bellman": (SV(), "bellman", {}, None, sv_params),
    "SV-qml": (SV(), "qml", {}, None, sv_params),
    "SV-pf": (SV(), "pf", {"num_particles": 64}, None, sv_params),
    "SV-eis": (SV(), "eis", {"num_draws": 16}, None, sv_params),
    "GJR-skewt": (GARCH(vol="gjr", dist="skewt"), "exact", {}, None, gjr_params),
    "EGARCH": (EGARCH(), "exact", {}, None, egarch_params),
    "IGGARCH": (IGGARCH(), "exact", {}, None, iggarch_params),
    "DCC": (DCC(), "exact", {}, 2, dcc_params),
    "DFSV-bellman": (DFSV(), "bellman", {}, 3, dfsv_params),
    "WishartSV-eis": (WishartSV(), "eis", {"num_draws": 16}, 2, wishart_params),
}


@pytest.mark.filterwarnings("ignore:.*outside the IG-GARCH support:RuntimeWarning")
@pytest.mark.parametrize("case", list(CASES))
def test_the_log_likelihood_is_never_nan_without_an_error(case):
    model, method, options, columns, params_of = CASES[case]
    evaluated = []

    @SETTINGS
    @given(st.data())
    def check(data):
        y = data.draw(returns(columns), label="y")
        params = params_of(data.draw)
        try:
            value = bayesvol.log_likelihood(model, params, y, method=method, **options)
        except ValueError as err:
            # Bad data (constant, too large) and numerical breakdowns are reported, naming what to change.
            assert str(err)
            return
        evaluated.append(value)
        assert not np.isnan(value) and value != np.inf, (case, value)

    check()
    assert evaluated, f"every example of {case} was refused: the strategies test nothing"


# --- persistent parameters: the edges of the stationary region (d in [0.95, 0.9999], phi in [0.98, 0.9999]) ---

def persistent_sv_params(draw):
    return {"mu": draw(unit(-4.0, 4.0)), "phi": draw(unit(0.98, 0.9999)), "sigma": draw(unit(0.05, 1.0))}


def persistent_gjr_params(draw):
    # Persistence alpha + beta + gamma / 2 (normal-like skew: about half the shocks are negative) near one.
    alpha, gamma = draw(unit(0.01, 0.1)), draw(unit(0.0, 0.1))
    beta = draw(unit(0.98, 0.9999)) - alpha - 0.5 * gamma - 0.02 * gamma
    return {"mu": draw(unit(-1.0, 1.0)), "omega": draw(unit(1e-4, 0.1)), "alpha": alpha, "gamma": gamma,
            "beta": beta, "nu": draw(unit(4.0, 40.0)), "skew": draw(unit(-0.3, 0.3))}


def persistent_egarch_params(draw):
    # Negative size effects included: the log-variance feedback is then explosive and the cap on the
    # standardised residual keeps the log-likelihood and its gradient finite.
    return {"mu": draw(unit(-1.0, 1.0)), "omega": draw(unit(-1.0, 1.0)), "alpha": draw(unit(-0.5, 0.5)),
            "gamma": draw(unit(-0.3, 0.3)), "beta": draw(unit(0.98, 0.9999))}


def persistent_iggarch_params(draw):
    eta, share_a, share_c = -draw(unit(1e-3, 0.05)), draw(unit(0.05, 0.5)), draw(unit(0.01, 0.3))
    b = draw(unit(0.98, 0.9999)) - share_a - share_c
    return {"lam": draw(unit(-1.0, 1.0)), "eta": eta, "w": draw(unit(1e-4, 0.05)), "b": b,
            "c": share_c * eta**2, "a": share_a / eta**2}


def persistent_dcc_params(draw):
    alpha = np.array([draw(unit(0.01, 0.1)) for _ in range(2)])
    dcc_a = draw(unit(0.005, 0.05))
    return {"omega": np.array([draw(unit(1e-3, 0.1)) for _ in range(2)]), "alpha": alpha,
            "beta": np.array([draw(unit(0.98, 0.9999)) for _ in range(2)]) - alpha,
            "dcc_a": dcc_a, "dcc_b": draw(unit(0.95, 0.9999)) - dcc_a}


def persistent_dfsv_params(draw):
    params = dfsv_params(draw)
    params["Phi_h"] = np.array([[draw(unit(0.98, 0.9999))]])
    return params


def persistent_wishart_params(draw):
    # A = Omega^(1-d): the stationary precision is of the order of Omega (the returns' inverse covariance,
    # of order one for the standard-normal data below), as for any A fitted to data at persistent d.
    d = draw(unit(0.95, 0.9999))
    v1, v2, r = draw(unit(0.3, 3.0)), draw(unit(0.3, 3.0)), draw(unit(-0.6, 0.6))
    omega = np.array([[v1, r * np.sqrt(v1 * v2)], [r * np.sqrt(v1 * v2), v2]])
    values, vectors = np.linalg.eigh(omega)
    a = (vectors * values ** (1.0 - d)) @ vectors.T
    return {"nu": draw(unit(4.0, 30.0)), "d": d, "A": 0.5 * (a + a.T)}


PERSISTENT_CASES = {
    "SV-bellman": (SV(), "bellman", {}, None, persistent_sv_params),
    "SV-qml": (SV(), "qml", {}, None, persistent_sv_params),
    "SV-pf": (SV(), "pf", {"num_particles": 64}, None, persistent_sv_params),
    "SV-eis": (SV(), "eis", {"num_draws": 16}, None, persistent_sv_params),
    "GJR-skewt": (GARCH(vol="gjr", dist="skewt"), "exact", {}, None, persistent_gjr_params),
    "EGARCH": (EGARCH(), "exact", {}, None, persistent_egarch_params),
    "IGGARCH": (IGGARCH(), "exact", {}, None, persistent_iggarch_params),
    "DCC": (DCC(), "exact", {}, 2, persistent_dcc_params),
    "DFSV-bellman": (DFSV(), "bellman", {}, 3, persistent_dfsv_params),
    "WishartSV-eis": (WishartSV(), "eis", {"num_draws": 16}, 2, persistent_wishart_params),
    "WishartSV-pf": (WishartSV(), "pf", {"num_particles": 64}, 2, persistent_wishart_params),
}


@pytest.mark.filterwarnings("ignore:.*outside the IG-GARCH support:RuntimeWarning")
@pytest.mark.parametrize("case", list(PERSISTENT_CASES))
def test_persistent_parameters_give_a_finite_log_likelihood(case):
    """Near the edge of the stationary region every method gives a finite number on standard-normal data."""
    model, method, options, columns, params_of = PERSISTENT_CASES[case]
    y = np.random.default_rng(3).standard_normal((T,) if columns is None else (T, columns))

    @SETTINGS
    @given(st.data())
    def check(data):
        params = params_of(data.draw)
        value = bayesvol.log_likelihood(model, params, y, method=method, **options)
        assert np.isfinite(value), (case, params, value)

    check()


GRADIENT_CASES = ["SV-qml", "SV-bellman", "GJR-skewt", "EGARCH", "DCC"]
PERSISTENT_GRADIENT_CASES = ["SV-qml", "SV-eis", "GJR-skewt", "EGARCH", "DCC", "WishartSV-eis"]


@pytest.mark.parametrize("case", GRADIENT_CASES)
def test_gradients_are_finite_inside_the_support(case):
    model, method, options, columns, params_of = CASES[case]
    y = np.random.default_rng(1).standard_normal((T,) if columns is None else (T, columns))
    grad = jax.jit(jax.grad(bayesvol.log_likelihood_fn(model, y, method=method, **options)))

    @SETTINGS
    @given(st.data())
    def check(data):
        params = params_of(data.draw)
        leaves = jax.tree_util.tree_leaves(grad(params))
        assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves), (case, params)

    check()


@pytest.mark.parametrize("case", PERSISTENT_GRADIENT_CASES)
def test_gradients_are_finite_at_persistent_parameters(case):
    model, method, options, columns, params_of = PERSISTENT_CASES[case]
    y = np.random.default_rng(1).standard_normal((T,) if columns is None else (T, columns))
    grad = jax.jit(jax.grad(bayesvol.log_likelihood_fn(model, y, method=method, **options)))

    @SETTINGS
    @given(st.data())
    def check(data):
        params = params_of(data.draw)
        leaves = jax.tree_util.tree_leaves(grad(params))
        assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves), (case, params)

    check()
