"""GARCH/GJR exact log-likelihood and maximum likelihood, checked against a naive loop and the arch package."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

import bayesvol
from bayesvol.models import GARCH

arch = pytest.importorskip("arch")

DEM2GBP = Path(__file__).parent / "data" / "dem2gbp_bollerslev_ghysels_1984_1991.csv"
ARCH_DIST = {"normal": "normal", "t": "t", "skewt": "skewt"}
CASES = [(vol, dist) for vol in ("garch", "gjr") for dist in ("normal", "t", "skewt")]


# --- an independent reference: a plain Python loop over the recursion with scipy densities -------------
def hansen_skewt_logpdf(z, nu, lam):
    """Hansen (1994) skewed t log density written out from the paper's formula."""
    c = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(math.pi * (nu - 2))
    a = 4 * lam * c * (nu - 2) / (nu - 1)
    b = math.sqrt(1 + 3 * lam**2 - a**2)
    side = 1 - lam if z < -a / b else 1 + lam
    return math.log(b * c) - (nu + 1) / 2 * math.log1p(((b * z + a) / side) ** 2 / (nu - 2))


def innovation_logpdf(z, dist, p):
    if dist == "normal":
        return scipy.stats.norm.logpdf(z)
    if dist == "t":
        scale = math.sqrt((p["nu"] - 2) / p["nu"])
        return scipy.stats.t.logpdf(z / scale, p["nu"]) - math.log(scale)
    return hansen_skewt_logpdf(z, p["nu"], p["skew"])


def naive_loglik(y, p, vol, dist, presample):
    """sigma2_1 = omega + (alpha + gamma/2 + beta) * presample, then the GJR recursion with the indicator."""
    mu, gamma = p.get("mu", 0.0), p.get("gamma", 0.0) if vol == "gjr" else 0.0
    sigma2 = p["omega"] + (p["alpha"] + 0.5 * gamma + p["beta"]) * presample
    out = []
    for y_t in y:
        eps = y_t - mu
        out.append(innovation_logpdf(eps / math.sqrt(sigma2), dist, p) - 0.5 * math.log(sigma2))
        sigma2 = p["omega"] + (p["alpha"] + gamma * (eps < 0)) * eps**2 + p["beta"] * sigma2
    return np.array(out)


def naive_backcast(residuals):
    tau = min(75, len(residuals))
    w = 0.94 ** np.arange(tau)
    return float(np.sum(w * residuals[:tau] ** 2) / np.sum(w))


def arch_model(y, vol, dist):
    return arch.arch_model(y, mean="Constant", vol="GARCH", p=1, o=int(vol == "gjr"), q=1, dist=ARCH_DIST[dist],
                           rescale=False)


def arch_pointwise(model, params):
    """arch's per-observation log-likelihood at fixed parameters (its backcast from the demeaned data).

    ``fix`` (public) gives the total; the terms come from the same private routine that ``fix`` sums.
    """
    total = model.fix(np.asarray(params)).loglikelihood
    resids = model.resids(model.starting_values())
    backcast = model.volatility.backcast(resids)
    bounds = model.volatility.variance_bounds(resids)
    terms = -model._loglikelihood(np.asarray(params), np.zeros(len(resids)), backcast, bounds, individual=True)
    assert terms.sum() == pytest.approx(total, abs=1e-8)
    return terms


PARAMS = {"mu": 0.03, "omega": 0.02, "alpha": 0.06, "gamma": 0.07, "beta": 0.88, "nu": 6.5, "skew": -0.2}


def params_for(model):
    return {n: PARAMS[n] for n in model.param_names}


@pytest.fixture(scope="module")
def y_fx(gbpusd):
    return np.asarray(gbpusd)


@pytest.mark.parametrize(("vol", "dist"), CASES)
def test_pointwise_loglik_equals_naive_loop_and_arch(y_fx, vol, dist):
    model = GARCH(vol=vol, dist=dist)
    p = params_for(model)
    ours = bayesvol.log_likelihood(model, p, y_fx, pointwise=True)
    reference = naive_loglik(y_fx, p, vol, dist, naive_backcast(y_fx - y_fx.mean()))
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-9)
    from_arch = arch_pointwise(arch_model(y_fx, vol, dist), [p[n] for n in model.param_names])
    np.testing.assert_allclose(ours, from_arch, rtol=0, atol=1e-6)
    assert bayesvol.log_likelihood(model, p, y_fx) == pytest.approx(ours.sum(), abs=1e-9)


@pytest.mark.parametrize("start", ["sample", 0.7, "unconditional"])
def test_other_variance_starts_equal_naive_loop(y_fx, start):
    model = GARCH(vol="gjr", dist="t", variance_start=start)
    p = params_for(model)
    ours = bayesvol.log_likelihood(model, p, y_fx, pointwise=True)
    if start == "sample":
        presample = float(np.mean((y_fx - p["mu"]) ** 2))
    elif start == "unconditional":
        # sigma2_1 = omega/(1-kappa) is reached by the presample value b with omega + kappa b = omega/(1-kappa).
        kappa = p["alpha"] + 0.5 * p["gamma"] + p["beta"]
        presample = p["omega"] / (1 - kappa)
    else:
        presample = start
    np.testing.assert_allclose(ours, naive_loglik(y_fx, p, "gjr", "t", presample), rtol=0, atol=1e-9)


def test_zero_mean_uses_raw_data_for_backcast(y_fx):
    model = GARCH(dist="normal", mean="zero")
    p = {"omega": 0.02, "alpha": 0.06, "beta": 0.9}
    reference = naive_loglik(y_fx, p, "garch", "normal", naive_backcast(y_fx))
    np.testing.assert_allclose(bayesvol.log_likelihood(model, p, y_fx, pointwise=True), reference, atol=1e-9)
    am = arch.arch_model(y_fx, mean="Zero", vol="GARCH", p=1, q=1, rescale=False)
    np.testing.assert_allclose(bayesvol.log_likelihood(model, p, y_fx, pointwise=True),
                               arch_pointwise(am, [0.02, 0.06, 0.9]), atol=1e-6)


def test_persistence_unconditional_variance_and_half_life():
    model = GARCH(vol="gjr", dist="skewt")
    p = params_for(model)
    law = bayesvol.distributions.SkewedStudentT(p["nu"], p["skew"])
    # E[z^2 1{z<0}] by quadrature of the density, independent of the closed form.
    lower, _ = scipy.integrate.quad(lambda z: z**2 * math.exp(hansen_skewt_logpdf(z, p["nu"], p["skew"])),
                                    -np.inf, 0.0)
    assert float(law.second_moment_below_zero()) == pytest.approx(lower, rel=1e-8)
    kappa = p["alpha"] + p["beta"] + p["gamma"] * lower
    assert float(model.persistence(p)) == pytest.approx(kappa, rel=1e-8)
    assert float(model.unconditional_variance(p)) == pytest.approx(p["omega"] / (1 - kappa), rel=1e-8)
    assert float(model.half_life(p)) == pytest.approx(math.log(0.5) / math.log(kappa), rel=1e-8)
    symmetric = GARCH(vol="gjr", dist="t")
    assert float(symmetric.persistence(params_for(symmetric))) == pytest.approx(0.06 + 0.88 + 0.035, rel=1e-12)


@pytest.mark.parametrize(("vol", "dist"), [("garch", "normal"), ("garch", "t"), ("gjr", "skewt")])
def test_mle_at_least_arch_and_within_standard_errors(y_fx, vol, dist):
    model = GARCH(vol=vol, dist=dist)
    theirs = arch_model(y_fx, vol, dist).fit(disp="off")
    ours = bayesvol.fit(model, y_fx)
    assert ours.converged and not ours.at_boundary
    # Both optimisers stop at a gradient tolerance: arch's optimum may exceed ours by rounding only.
    assert ours.loglik >= theirs.loglikelihood - 1e-6
    for i, name in enumerate(model.param_names):
        assert abs(ours.params[name] - theirs.params.iloc[i]) < 0.05 * ours.se[name], name
        # arch's default standard errors are the robust (sandwich) ones.
        assert ours.robust_se[name] == pytest.approx(theirs.std_err.iloc[i], rel=0.02), name
    assert ours.aic == pytest.approx(theirs.aic, abs=1e-4)
    assert ours.bic == pytest.approx(theirs.bic, abs=1e-4)


def test_bollerslev_ghysels_benchmark():
    """Fiorentini, Calzolari & Panattoni (1996) / McCullough & Renfro (1999) GARCH(1,1) benchmark values.

    sigma2_1 = omega + (alpha + beta) * mean(eps^2), which is ``variance_start="sample"``.
    """
    y = pd.read_csv(DEM2GBP)["ret_pct"].to_numpy()
    result = bayesvol.fit(GARCH(variance_start="sample"), y)
    assert result.converged
    benchmark = {"mu": -0.00619041, "omega": 0.0107613, "alpha": 0.153134, "beta": 0.805974}
    for name, value in benchmark.items():
        assert result.params[name] == pytest.approx(value, rel=2e-4, abs=2e-6), name
    assert result.loglik == pytest.approx(-1106.608, abs=1e-3)
    assert "alpha" in result.summary() and "Log-likelihood" in result.summary()


def test_integrated_optimum_is_reached_and_reported():
    """Student-t GARCH on DEM/GBP: arch's optimum has alpha + beta = 1 (to 1e-9).

    The stationarity edge is outside the model, so bayesvol approaches it through the stick-breaking map
    and stops just inside: the log-likelihood is within 1e-4 of arch's and ``beta`` is flagged.
    """
    y = pd.read_csv(DEM2GBP)["ret_pct"].to_numpy()
    theirs = arch.arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(disp="off")
    assert theirs.params["alpha[1]"] + theirs.params["beta[1]"] > 1 - 1e-6
    ours = bayesvol.fit(GARCH(dist="t"), y)
    assert ours.converged
    assert ours.loglik == pytest.approx(theirs.loglikelihood, abs=1e-4)
    assert float(GARCH(dist="t").persistence(ours.params)) > 0.9999
    assert "beta" in ours.at_boundary


def test_fit_reports_boundary_and_non_convergence(y_fx):
    # Data without volatility clustering: alpha goes to zero, which must be reported, not hidden.
    rng = np.random.default_rng(4)
    white = rng.standard_normal(1500)
    result = bayesvol.fit(GARCH(dist="normal"), white, warn=False)
    assert "alpha" in result.at_boundary
    assert "alpha" in result.summary()
    with pytest.warns(bayesvol.ConvergenceWarning, match="did not converge"):
        short = bayesvol.fit(GARCH(vol="gjr", dist="skewt"), y_fx, maxiter=3)
    assert not short.converged
    assert "did not converge" in short.summary()


def test_bad_input_and_impossible_parameters(y_fx):
    model = GARCH(vol="gjr", dist="t")
    p = params_for(model)
    with pytest.raises(ValueError, match="vol must be"):
        GARCH(vol="egarch")
    with pytest.raises(ValueError, match="dist must be"):
        GARCH(dist="ged")
    with pytest.raises(ValueError, match="variance_start"):
        GARCH(variance_start=-1.0)
    with pytest.raises(ValueError, match="non-finite"):
        bayesvol.log_likelihood(model, p, np.r_[y_fx[:100], np.inf])
    with pytest.raises(ValueError, match="observations"):
        bayesvol.fit(model, y_fx[:5])
    with pytest.raises(ValueError, match="outside its support"):
        bayesvol.log_likelihood(model, dict(p, omega=-0.1), y_fx)
    with pytest.raises(ValueError, match="outside its support"):
        bayesvol.log_likelihood(model, dict(p, nu=1.5), y_fx)
    # A persistence above one is inside every support: the likelihood is evaluated, with a warning.
    with pytest.warns(bayesvol.StationarityWarning, match="not covariance-stationary"):
        assert np.isfinite(bayesvol.log_likelihood(model, dict(p, beta=0.95), y_fx))
    with pytest.raises(ValueError, match="alpha \\+ gamma"):
        bayesvol.log_likelihood(model, dict(p, gamma=-0.1), y_fx)
    with pytest.raises(ValueError, match="missing parameter"):
        bayesvol.log_likelihood(model, {"omega": 0.1}, y_fx)


def test_gradients_finite_near_boundaries(y_fx):
    """No NaN gradients where alpha -> 0, alpha + gamma -> 0 or the persistence approaches one."""
    import jax
    import jax.numpy as jnp

    from bayesvol.models import _observation

    model = GARCH(vol="gjr", dist="skewt")
    y = jnp.asarray(y_fx)

    def total(values):
        return jnp.sum(_observation.pointwise_loglik(model, model.params_type(**values), y))

    p = params_for(model)
    lower = float(model.negative_second_moment(model.params_type(**{n: jnp.asarray(v) for n, v in p.items()})))
    nearly_integrated = 1.0 - p["alpha"] - p["gamma"] * lower - 1e-10
    for changes in ({"alpha": 1e-12, "gamma": 0.1}, {"alpha": 0.05, "gamma": -0.05 + 1e-12},
                    {"beta": nearly_integrated}, {"skew": -0.999}):
        values = {n: jnp.asarray(v) for n, v in dict(params_for(model), **changes).items()}
        value, grad = jax.value_and_grad(total)(values)
        assert np.isfinite(float(value))
        assert all(np.isfinite(float(g)) for g in grad.values()), changes
    # Off the space (alpha + gamma < 0) the log-likelihood is -inf with finite (zero) gradients, never NaN;
    # beyond a persistence of one it is finite (defined, only not stationary).
    values = {n: jnp.asarray(v) for n, v in dict(params_for(model), gamma=-0.060001).items()}
    value, grad = jax.value_and_grad(total)(values)
    assert float(value) == -np.inf
    assert not any(np.isnan(float(g)) for g in grad.values())
    values = {n: jnp.asarray(v) for n, v in dict(params_for(model), beta=0.99).items()}
    value, grad = jax.value_and_grad(total)(values)
    assert np.isfinite(float(value)) and all(np.isfinite(float(g)) for g in grad.values())


def test_scipy_special_gamma_reference_sanity():
    # The naive loop's t normaliser agrees with scipy (guards the hand-written Hansen constant).
    nu = 6.5
    c = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(math.pi * (nu - 2))
    expected = scipy.special.gamma((nu + 1) / 2) / (scipy.special.gamma(nu / 2) * np.sqrt(np.pi * (nu - 2)))
    assert c == pytest.approx(expected, rel=1e-12)
    assert hansen_skewt_logpdf(0.3, nu, 0.0) == pytest.approx(innovation_logpdf(0.3, "t", {"nu": nu}), rel=1e-12)
