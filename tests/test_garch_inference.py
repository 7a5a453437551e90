"""NUTS on GARCH: default priors, exact pointwise log-likelihood in the posterior DataTree, posterior forecasts."""

import numpy as np
import pytest

import bayesvol
from bayesvol.models import GARCH


@pytest.fixture(scope="module")
def posterior(gbpusd):
    model = GARCH(vol="gjr", dist="normal")
    y = gbpusd.iloc[:300]
    idata = bayesvol.sample(model, y, num_chains=1, num_warmup=60, num_samples=40, progress_bar=False, warn=False)
    return model, y, idata


def test_nuts_with_default_priors_stores_exact_pointwise_loglik(posterior):
    model, y, idata = posterior
    for name in model.param_names:
        assert idata.posterior[name].shape == (1, 40)
    loglik = idata.log_likelihood["y"]
    assert loglik.dims == ("chain", "draw", "time") and loglik.shape == (1, 40, len(y))
    assert idata.log_likelihood.attrs["log_likelihood"] == "one-step-ahead predictive log p(y_t | y_{1:t-1}, theta)"
    # Each draw's stored terms are the exact one-step-ahead log densities at that draw.
    for draw in (0, 17, 39):
        params = {n: float(idata.posterior[n].values[0, draw]) for n in model.param_names}
        np.testing.assert_allclose(loglik.values[0, draw], bayesvol.log_likelihood(model, params, y, pointwise=True),
                                   rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(idata.posterior["vol"].values[0, draw] ** 2, model.filter(params, y)[:-1],
                                   rtol=1e-10)
        assert float(model.persistence(params)) < 1.0
    # Dates of the data are the time coordinates.
    assert (idata.posterior["vol"].coords["time"].values == y.index.values).all()


def test_forecast_from_posterior_gives_predictive_var(posterior):
    model, y, idata = posterior
    fc = bayesvol.forecast(model, idata, y, horizon=3, levels=[0.01, 0.05], num_paths=4000)
    assert fc.source == "posterior"
    assert list(fc.variance.columns) == ["mean", "2.5%", "97.5%"]
    assert (fc.variance["2.5%"] <= fc.variance["mean"]).all() and (fc.variance["mean"] <= fc.variance["97.5%"]).all()
    assert (fc.value_at_risk[0.01] > fc.value_at_risk[0.05]).all()
    assert fc.returns.shape == (4000, 3)


@pytest.mark.parametrize("spec", [dict(vol="garch", dist="normal"), dict(vol="gjr", dist="skewt")])
def test_stationary_coordinates_carry_the_prior_and_its_jacobian(spec):
    """The NumPyro program's log joint on the stick-breaking coordinates equals the priors of (alpha, gamma, beta)
    times the absolute Jacobian determinant of coordinates -> (alpha, gamma, beta), taken here by autodiff."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    model = GARCH(mean="zero", **spec)
    y = jnp.asarray(np.random.default_rng(0).standard_normal(50))
    priors = model.prior_distributions()
    names = ("alpha", "gamma", "beta") if spec["vol"] == "gjr" else ("alpha", "beta")
    others = {"omega": 0.05, "nu": 6.0, "skew": -0.2}
    others = {k: v for k, v in others.items() if k in model.param_names}
    rng = np.random.default_rng(1)
    for _ in range(4):
        coords = jnp.asarray(rng.normal(-1.0, 0.7, len(names)))
        params = model.params_type(**others, **dict.fromkeys(names, 0.0))
        lower = model.negative_second_moment(params)

        def mapped(c, lower=lower):
            values = model._from_stationary_coords(c, lower)[0]
            return jnp.stack([values[n] for n in names])

        values = dict(zip(names, mapped(coords), strict=True))
        full = model.params_type(**others, **values)
        assert float(model.persistence(full)) < 1.0
        _, log_abs_det = jnp.linalg.slogdet(jax.jacfwd(mapped)(coords))
        expected = (sum(float(getattr(priors, n).log_prob(others[n])) for n in others)
                    + sum(float(getattr(priors, n).log_prob(values[n])) for n in names) + float(log_abs_det)
                    + float(bayesvol.log_likelihood(model, full, y)))
        actual, _ = log_density(model.program, (y,), {}, {**others, "stationary_coords": coords})
        np.testing.assert_allclose(float(actual), expected, rtol=1e-10)
