r"""One-step-ahead predictive laws of the rolling forecasts, one entry per kind of model and emission.

[`bayesvol.rolling.rolling_forecast`][bayesvol.rolling.rolling_forecast] asks this module two things for the dates after
a refit: the filtered state of each date (the parameters of the refit run through the data up to the day before), and
from the state the predictive law's mean, variance, VaR, ES and the log density of the realised return.

A model family plugs in through `FAMILIES` (how its states are filtered; today the observation-driven
univariate models, whose exact recursion gives the state) and an emission through `TAILS` (how the
quantile and the tail mean $E[y \mid y \le q_\alpha]$ of its one-step law are computed: in closed form
for the location-scale laws of the GARCH family and for IG-GARCH's inverse Gaussian returns). A posterior
enters as a mixture over its draws, whose VaR and ES are read from simulated returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as ndist
from scipy import special, stats

from bayesvol.backtest import DrawsPredictive, NormalPredictive, StudentTPredictive
from bayesvol.distributions import SkewedStudentT, StandardizedStudentT
from bayesvol.models import _observation
from bayesvol.models._protocol import LatentStateModel, VarianceForecastModel
from bayesvol.models.iggarch import IGReturn

__all__ = ["FAMILIES", "TAILS", "family_of", "filter_blocks", "posterior_block", "tail_risk"]


# --- tails of the one-step laws -------------------------------------------------------------------------

def _normal_tail(fields, level):
    q = special.ndtri(level)
    return q, -stats.norm.pdf(q) / level


def _student_t_tail(fields, level):
    df = fields["df"]
    s = np.sqrt((df - 2.0) / df)
    t_q = stats.t.ppf(level, df)
    return s * t_q, -s * (df + t_q**2) / (df - 1.0) * stats.t.pdf(t_q, df) / level


def _unit_t_partial_first_moment(df, upper, c):
    r"""$\int_{-\infty}^{y} x\,g(x)\,dx$ of the unit-variance t density $g$, in closed form."""
    return -c * (df - 2.0) / (df - 1.0) * (1.0 + upper**2 / (df - 2.0)) ** (-0.5 * (df - 1.0))


def _skewed_t_tail(fields, level):
    r"""Quantile and $E[z \mid z \le q]$ of Hansen's skewed t (Notes of
[`SkewedStudentT`][bayesvol.distributions.SkewedStudentT]).

    With $u = bz + a$, the law of $u$ has density $g(u/(1-\lambda))$ below zero and
    $g(u/(1+\lambda))$ above, so $E[u\,1\{u \le u_q\}] = (1-\lambda)^2 P_1(\min(u_q, 0)/(1-\lambda))
    + 1\{u_q > 0\}(1+\lambda)^2 (P_1(u_q/(1+\lambda)) - P_1(0))$ with $P_1$ the partial first moment
    of the unit-variance t, and $E[z\,1\{z \le q\}] = (E[u\,1\{u \le u_q\}] - a\alpha)/b$.
    """
    df, lam = fields["df"], fields["skew"]
    c = np.exp(special.gammaln(0.5 * (df + 1.0)) - special.gammaln(0.5 * df) - 0.5 * np.log(np.pi * (df - 2.0)))
    a = 4.0 * lam * c * (df - 2.0) / (df - 1.0)
    b = np.sqrt(1.0 + 3.0 * lam**2 - a**2)
    s = np.sqrt((df - 2.0) / df)
    below = level < 0.5 * (1.0 - lam)
    u_below = (1.0 - lam) * s * stats.t.ppf(np.minimum(level / (1.0 - lam), 0.5), df)
    u_above = -(1.0 + lam) * s * stats.t.ppf(np.clip((1.0 - level) / (1.0 + lam), 0.0, 0.5), df)
    u_q = np.where(below, u_below, u_above)
    partial_u = (1.0 - lam) ** 2 * _unit_t_partial_first_moment(df, np.minimum(u_q, 0.0) / (1.0 - lam), c)
    upper_piece = (1.0 + lam) ** 2 * (_unit_t_partial_first_moment(df, np.maximum(u_q, 0.0) / (1.0 + lam), c)
                                      - _unit_t_partial_first_moment(df, 0.0, c))
    partial_u = partial_u + np.where(u_q > 0.0, upper_piece, 0.0)
    return (u_q - a) / b, (partial_u - a * level) / (b * level)


def _inverse_gaussian_partial_mean(q, delta):
    r"""$E[Y\,1\{Y \le q\}]$ for $Y \sim IG(\text{mean } \delta, \text{shape } \delta^2)$.

    $\delta\,[\Phi((q - \delta)/\sqrt q) - e^{2\delta}\Phi(-(q + \delta)/\sqrt q)]$, the second term
    through logarithms so that it stays finite for large $\delta$.
    """
    root = np.sqrt(q)
    return delta * (special.ndtr((q - delta) / root)
                    - np.exp(2.0 * delta + special.log_ndtr(-(q + delta) / root)))


def _ig_return_tail(fields, level):
    r"""Quantile and tail mean of $R = \ell + \eta Y$, $Y \sim IG(\delta)$, $\delta = h/\eta^2$.

    For $\eta > 0$ the lower tail of $R$ is the lower tail of $Y$; for $\eta < 0$ the
    upper one, with $E[Y \mid Y \ge q] = (\delta - E[Y 1\{Y \le q\}])/\alpha$.
    """
    loc, eta, h = fields["loc"], fields["eta"], fields["h"]
    delta = h / eta**2
    positive = eta > 0.0
    law = stats.invgauss(1.0 / delta, scale=delta**2)
    q_y = np.where(positive, law.ppf(level), law.isf(level))
    partial = _inverse_gaussian_partial_mean(q_y, delta)
    tail_y = np.where(positive, partial / level, (delta - partial) / level)
    return loc + eta * q_y, loc + eta * tail_y


@dataclass(frozen=True)
class Tail:
    """How the VaR and ES of one kind of one-step law are computed.

    Attributes
    ----------
    fields : callable
        ``fields(law) -> dict`` of arrays describing the law (traced inside ``jit``).
    quantile_and_tail_mean : callable
        ``fn(fields, level) -> (q, m)`` on numpy arrays: the quantile $q_\\alpha$ and
        $E[y \\mid y \\le q_\\alpha]$, of the standardised innovation when ``standardised`` (then
        shifted and scaled by the law's ``loc`` and ``scale``), else of the return itself.
    standardised : bool
        Whether the two numbers are those of the innovation of a location-scale law.
    predictive : callable or None
        ``fn(mean, scale, fields) ->`` a predictive object of `bayesvol.backtest` with the same law,
        used by the backtests to simulate under the null; ``None`` to simulate from the model's emission.
    """

    fields: Callable
    quantile_and_tail_mean: Callable
    standardised: bool = True
    predictive: Callable | None = None


def _location_scale_fields(law, **innovation):
    return {"loc": jnp.broadcast_to(law.loc, law.batch_shape), "scale": jnp.sqrt(law.variance),
            **{k: jnp.broadcast_to(v, law.batch_shape) for k, v in innovation.items()}}


#: (emission type, innovation type or None) -> Tail. A new emission type adds a row.
TAILS: dict[tuple[type, type | None], Tail] = {
    (_observation.LocationScale, ndist.Normal): Tail(
        _location_scale_fields, _normal_tail, predictive=lambda mean, scale, f: NormalPredictive(mean, scale)),
    (_observation.LocationScale, StandardizedStudentT): Tail(
        lambda law: _location_scale_fields(law, df=law.innovation.df), _student_t_tail,
        predictive=lambda mean, scale, f: StudentTPredictive(f["df"], mean, scale)),
    (_observation.LocationScale, SkewedStudentT): Tail(
        lambda law: _location_scale_fields(law, df=law.innovation.df, skew=law.innovation.skew), _skewed_t_tail),
    (IGReturn, None): Tail(
        lambda law: {"loc": jnp.broadcast_to(law.loc, law.batch_shape), "eta": jnp.broadcast_to(law.eta,
                                                                                                law.batch_shape),
                     "h": law.variance}, _ig_return_tail, standardised=False),
}


def tail_of(law) -> Tail:
    """The `TAILS` entry of a one-step law, or a clear error."""
    inner = getattr(law, "innovation", None)
    # A subclass of a tabulated law (e.g. EGARCH's location-scale law given the log variance) has its parent's
    # tails: the first class in its method resolution order that the table lists.
    inner_type = None if inner is None else type(inner)
    key = next(((cls, inner_type) for cls in type(law).__mro__ if (cls, inner_type) in TAILS),
               (type(law), inner_type))
    if key not in TAILS:
        raise NotImplementedError(f"VaR and ES of the one-step law {type(law).__name__}"
                                  f"{'' if inner is None else f' with {type(inner).__name__} innovations'} "
                                  "are not available; add its quantile and tail mean to TAILS")
    return TAILS[key]


def tail_risk(tail: Tail, fields: dict, levels) -> dict:
    """``{level: (VaR, ES)}`` as positive losses from the law's ``fields`` (numpy arrays)."""
    out = {}
    for level in levels:
        q, m = tail.quantile_and_tail_mean(fields, level)
        if tail.standardised:
            q, m = fields["loc"] + fields["scale"] * q, fields["loc"] + fields["scale"] * m
        out[level] = (-np.asarray(q, dtype=np.float64), -np.asarray(m, dtype=np.float64))
    return out


# --- families: the state of each forecast date ---------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """How rolling forecasts get the one-step law of each date for one kind of model.

    Attributes
    ----------
    accepts : callable
        ``accepts(model) -> bool``.
    refuse : str or None
        Why forecasts of these models are not available yet (raised as ``NotImplementedError``), or
        ``None`` where they are.
    """

    name: str
    accepts: Callable
    refuse: str | None = None


#: Checked in order; the first that accepts a model serves it.
FAMILIES: tuple[Family, ...] = (
    Family("observation-driven", lambda m: isinstance(m, VarianceForecastModel)),
    Family("latent-state", lambda m: isinstance(m, LatentStateModel),
           refuse="one-step forecasts of latent-state models (SV and its relatives) come with the SV forecast "
                  "of bayesvol.forecast, which does not exist yet; rolling forecasts will use it once it does"),
)


def family_of(model) -> Family:
    """The family serving ``model``; ``NotImplementedError`` naming why where its forecasts do not exist yet."""
    for family in FAMILIES:
        if family.accepts(model):
            if family.refuse is not None:
                raise NotImplementedError(f"rolling forecasts of {model.describe()}: {family.refuse}")
            return family
    describe = getattr(model, "describe", lambda: repr(model))()
    raise NotImplementedError(f"rolling forecasts need a univariate model with a one-step forecast (GARCH, EGARCH, "
                              f"IGGARCH); got {describe}")


def _one_refit(model, values, y_fit, y_segment, horizon: int, num_samples: int, key):
    """States filtered over ``y_segment`` from the start value of ``y_fit``, and the one-step law of each date."""
    params = model.params_type(**values)
    first = model.init_state(params, y_fit)
    states, _ = _observation.filter_states(model, params, y_segment, state=first)
    law = model.emission(params, states)
    out = {"mean": law.mean, "variance": law.variance, "log_score": law.log_prob(y_segment),
           "tail": tail_of(law).fields(law)}
    if horizon > 1:
        out["expected"] = jax.vmap(lambda s: model.expected_variance(params, s, horizon))(states)
    if num_samples:
        out["samples"] = law.sample(key, (num_samples,))
    return out


@partial(jax.jit, static_argnums=(0, 4))
def _refits(model, values, y_fit, y_segment, horizon: int):
    return jax.vmap(lambda v, f, s: _one_refit(model, v, f, s, horizon, 0, None))(values, y_fit, y_segment)


@partial(jax.jit, static_argnums=(0, 4, 5))
def _draws(model, values, y_fit, y_segment, horizon: int, num_samples: int, key):
    keys = jax.random.split(key, next(iter(values.values())).shape[0])
    return jax.vmap(lambda v, k: _one_refit(model, v, y_fit, y_segment, horizon, num_samples, k))(values, keys)


def _columns(mean, variance, log_score, expected, risk, horizon):
    cols = {"mean": mean, "variance": variance, "volatility": np.sqrt(variance)}
    for level, (var, es) in risk.items():
        cols[f"var_{level:g}"] = var
        cols[f"es_{level:g}"] = es
    cols["log_score"] = log_score
    for k in range(2, horizon + 1):
        cols[f"variance_h{k}"] = expected[..., k - 1]
    return cols


def filter_blocks(model, values: dict, y_fit, y_segment, offsets, lengths, levels, horizon: int) -> dict:
    """Forecast columns of the dates after each of several refits of one model (plug-in parameters).

    Parameters
    ----------
    values : dict
        Parameter name -> array with one value per refit (leading axis).
    y_fit : array, shape (R, n_fit)
        Each refit's estimation window (its start value is computed from it, as in the likelihood).
    y_segment : array, shape (R, L)
        The data filtered for each refit: its estimation window followed by the data of its forecast dates
        (padded at the end to a common length, which leaves the earlier states unchanged).
    offsets, lengths : sequence of int
        Position in ``y_segment`` of each refit's first forecast date, and its number of forecast dates.

    Returns
    -------
    dict
        Column -> array over the forecast dates of all refits, in order.
    """
    out = jax.device_get(_refits(model, {k: jnp.asarray(v) for k, v in values.items()}, jnp.asarray(y_fit),
                                 jnp.asarray(y_segment), horizon))
    rows = np.concatenate([r * y_segment.shape[1] + np.arange(start, start + length)
                           for r, (start, length) in enumerate(zip(offsets, lengths, strict=True))])

    def dates(array):
        array = np.asarray(array, dtype=np.float64)
        return array.reshape((-1,) + array.shape[2:])[rows]

    fields = {k: dates(v) for k, v in out["tail"].items()}
    risk = tail_risk(tail_of_model(model), fields, levels)
    return _columns(dates(out["mean"]), dates(out["variance"]), dates(out["log_score"]),
                    dates(out["expected"]) if horizon > 1 else None, risk, horizon)


@lru_cache(maxsize=64)
def tail_of_model(model) -> Tail:
    """The `TAILS` entry of ``model``'s one-step law, found by tracing its emission once."""
    found = []

    def probe(values):
        params = model.params_type(**values)
        law = model.emission(params, model.init_state(params, None))
        found.append(tail_of(law))
        return jnp.zeros(())

    jax.eval_shape(probe, {n: jax.ShapeDtypeStruct((), jnp.float64) for n in model.param_names})
    return found[0]


def posterior_block(model, draws: dict, y_fit, y_segment, offset: int, length: int, levels, horizon: int,
                    num_samples: int, seed: int):
    """Forecast columns of the dates after one refit from posterior draws: the predictive is their mixture.

    The mean and the variances are averages over the draws (the variance column is the expected conditional
    variance, as in [`bayesvol.forecast`][bayesvol.forecasting.forecast]), the log score is
    $\\log \\frac1S\\sum_s p(y_t \\mid \\theta^{(s)})$, and VaR and ES are those of ``num_samples`` simulated returns
    per draw and date.

    Returns
    -------
    (dict, numpy.ndarray)
        Column -> array, and the simulated returns, shape ``(num_draws * num_samples, length)``.
    """
    out = jax.device_get(_draws(model, {k: jnp.asarray(v) for k, v in draws.items()}, jnp.asarray(y_fit),
                                jnp.asarray(y_segment), horizon, num_samples, jax.random.PRNGKey(seed)))
    cut = slice(offset, offset + length)
    samples = np.moveaxis(out["samples"][:, :, cut], 0, 1).reshape(-1, length)
    predictive = DrawsPredictive(samples)
    risk = {level: (np.asarray(predictive.value_at_risk(level)), np.asarray(predictive.expected_shortfall(level)))
            for level in levels}
    log_score = special.logsumexp(out["log_score"][:, cut], axis=0) - np.log(out["log_score"].shape[0])
    expected = out["expected"][:, cut].mean(axis=0) if horizon > 1 else None
    columns = _columns(out["mean"][:, cut].mean(axis=0), out["variance"][:, cut].mean(axis=0), log_score,
                       expected, risk, horizon)
    return columns, samples


@partial(jax.jit, static_argnums=(0, 4))
def _laws_at(model, values, variance, key, num_samples: int):
    def one(v, var_t, k):
        params = model.params_type(**v)
        law = model.emission(params, model.state_from_variance(params, var_t))
        return tail_of(law).fields(law), law.sample(k, (num_samples,)) if num_samples else jnp.zeros(0)

    keys = jax.random.split(key, variance.shape[0])
    return jax.vmap(one)(values, variance, keys)


def plug_in_predictive(model, values_per_date: dict, mean, variance, num_samples: int = 2000, seed: int = 0):
    """A `bayesvol.backtest` predictive of the plug-in one-step laws, one per date.

    The normal and Student-t laws map to [`NormalPredictive`][bayesvol.backtest.NormalPredictive] and
    [`StudentTPredictive`][bayesvol.backtest.StudentTPredictive]; other laws are represented by ``num_samples`` returns
    simulated from the model's emission at each date.
    """
    tail = tail_of_model(model)
    values = {k: jnp.asarray(v) for k, v in values_per_date.items()}
    fields, samples = jax.device_get(_laws_at(model, values, jnp.asarray(variance), jax.random.PRNGKey(seed),
                                              0 if tail.predictive is not None else num_samples))
    if tail.predictive is not None:
        return tail.predictive(np.asarray(mean), np.sqrt(np.asarray(variance)),
                               {k: np.asarray(v) for k, v in fields.items()})
    return DrawsPredictive(np.asarray(samples).T)
