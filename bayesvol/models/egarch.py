"""EGARCH(1,1) (Nelson 1991) with asymmetry, normal, Student-t or Hansen skewed-t innovations."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
from jax.scipy.special import log_ndtr
from numpyro.distributions.util import promote_shapes

import bayesvol.models._base as _base
import bayesvol.models._observation as _observation
from bayesvol.distributions import SkewedStudentT, StandardizedStudentT
from bayesvol.distributions.priors import ScaledBeta, ShiftedExponential
from bayesvol.distributions.skewed_t import _hansen_constants, _unit_t_abs_moments, _unit_t_partial_moments
from bayesvol.models._protocol import ObservationDrivenModelBase

__all__ = ["EGARCH", "EGARCHParams", "EGARCHSimulation", "exact_loglik", "log_backcast"]

# E|z| of the standard normal; arch centres |e_t| with it whatever the innovation law.
ABS_NORMAL_MEAN = math.sqrt(2.0 / math.pi)
# |ln sigma^2| is clipped here, so that far-off parameters (met e.g. by NUTS initialisation) give a finite
# and negligible likelihood instead of an overflow; arch caps ln sigma^2 near log(max double) likewise.
LOG_VARIANCE_BOUND = 700.0
# |e_t| is capped here in the likelihood and the recursion: at the clipped log variance -700 a return of
# order one has e_t near 1e152, whose square overflows and makes the sum and every gradient NaN. Beyond
# the cap the density is zero (-inf) with a zero, never NaN, derivative.
STANDARDISED_RESIDUAL_BOUND = 1e100
BACKCAST_DECAY = 0.94
BACKCAST_WINDOW = 75


class EGARCHParams(NamedTuple):
    """Parameters of [`EGARCH`][bayesvol.models.EGARCH]; those the model does not use are ``None``."""

    mu: jax.Array | None = None
    omega: jax.Array | None = None
    alpha: jax.Array | None = None
    gamma: jax.Array | None = None
    beta: jax.Array | None = None
    nu: jax.Array | None = None
    skew: jax.Array | None = None


class EGARCHSimulation(NamedTuple):
    """Simulated returns ``y`` and their conditional variances ``variance`` ($\\sigma^2_t$)."""

    y: np.ndarray
    variance: np.ndarray


def default_priors() -> dict:
    """Default priors of [`EGARCH`][bayesvol.models.EGARCH] (daily percent returns in mind; every one replaceable).

    ``mu ~ N(0, 1)``, ``omega ~ N(0, 0.5^2)``, ``alpha ~ N(0, 0.5^2)``, ``gamma ~ N(0, 0.5^2)``,
    ``beta ~ Beta(10, 1.5)`` on (0, 1) (mode 0.947, density zero at 1), ``nu - 2 ~ Exponential(0.1)``,
    ``(skew + 1)/2 ~ Beta(2, 2)``. ``omega``, ``alpha`` and ``gamma`` are free on the real line as in ``arch``;
    the support (0, 1) of ``beta`` is ``arch``'s bound for the EGARCH persistence.
    """
    return {
        "mu": ndist.Normal(0.0, 1.0),
        "omega": ndist.Normal(0.0, 0.5),
        "alpha": ndist.Normal(0.0, 0.5),
        "gamma": ndist.Normal(0.0, 0.5),
        "beta": ndist.Beta(10.0, 1.5),
        "nu": ShiftedExponential(0.1, 2.0),
        "skew": ScaledBeta(2.0, 2.0, -1.0, 1.0),
    }


def log_backcast(residuals) -> jax.Array:
    r"""Log of the exponentially weighted mean of the first squared residuals, ``arch``'s EGARCH start value.

    $\log \sum_{j<\tau} w_j e_j^2$ with $w_j \propto 0.94^j$, $\sum w_j = 1$ and
    $\tau = \min(75, T)$ (``arch.univariate.EGARCH.backcast``). Missing residuals (NaN) in the window
    get weight zero (see `bayesvol.models._observation.backcast`).
    """
    return jnp.log(_observation.backcast(residuals, BACKCAST_DECAY, BACKCAST_WINDOW))


def _log_mgf_abs_normal(a, g):
    r"""$\log E[\exp(a|z| + g z)]$ for $z \sim N(0, 1)$: $\sum_\pm e^{(a\pm g)^2/2}\Phi(a \pm g)$."""
    return jnp.logaddexp(0.5 * (a + g) ** 2 + log_ndtr(a + g), 0.5 * (a - g) ** 2 + log_ndtr(a - g))


class _BoundedLocationScale(_observation.LocationScale):
    """`LocationScale` given the log variance, whose standardised residual
    is capped at ``STANDARDISED_RESIDUAL_BOUND`` in ``log_prob`` (see [`EGARCH`][bayesvol.models.EGARCH], Notes)."""

    arg_constraints = {"loc": ndist.constraints.real, "log_variance": ndist.constraints.real}

    def __init__(self, innovation, loc, log_variance, *, validate_args=None):
        # Kept as a log: the derivative of 1/sigma_t at sigma^2_t = e^-700 overflows, that of e^{-h/2} does not.
        self.innovation = innovation
        self.loc, self.log_variance = promote_shapes(loc, log_variance)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(loc), jnp.shape(log_variance), innovation.batch_shape)
        ndist.Distribution.__init__(self, batch_shape=batch_shape, validate_args=validate_args)

    @property
    def scale_squared(self):
        return jnp.exp(self.log_variance)

    def log_prob(self, value):
        z = (value - self.loc) * jnp.exp(-0.5 * self.log_variance)
        capped = jnp.clip(z, -STANDARDISED_RESIDUAL_BOUND, STANDARDISED_RESIDUAL_BOUND)
        # Beyond the cap the density is zero (-inf), as an overflow would make it, so that a sampler rejects
        # such points instead of drifting on a plateau; the derivative there is zero, never NaN.
        inside = jnp.abs(z) <= STANDARDISED_RESIDUAL_BOUND
        return jnp.where(inside, self.innovation.log_prob(capped) - 0.5 * self.log_variance, -jnp.inf)


@dataclass(frozen=True)
class EGARCH(ObservationDrivenModelBase):
    r"""EGARCH(1,1) with an asymmetric term and a constant or zero mean.

    Parameters
    ----------
    dist : {"normal", "t", "skewt"}
        Law of the standardised innovation $z_t$ (mean 0, variance 1): normal, Student-t scaled to
        unit variance (``nu`` degrees of freedom) or Hansen's skewed t (``nu``, ``skew`` = Hansen's
        $\lambda$), as in ``arch``.
    mean : {"constant", "zero"}
        Mean of the returns: a free constant ``mu`` or zero.
    priors : mapping, optional
        Parameter name -> NumPyro distribution, overriding `default_priors`. The support of each prior
        is the constraint on that parameter for NUTS and maximum likelihood alike.
    variance_start : {"backcast", "sample", "unconditional"} or float
        How $\ln\sigma^2_1$ is set. With a pre-sample variance $b$,
        $\ln\sigma^2_1 = \omega + \beta \ln b$ (``arch``'s convention: the pre-sample log variance is
        $\ln b$ and the pre-sample shock terms are zero). ``"backcast"`` (default) takes
        $\ln b$ = `log_backcast` of the demeaned data (of ``y`` itself for a zero mean), exactly
        as ``arch`` does, so log-likelihoods agree with ``arch``; ``"sample"`` takes
        $b = T^{-1}\sum_t (y_t - \mu)^2$; a float is $b$ itself (``arch``'s ``backcast=``
        argument, a variance); ``"unconditional"`` sets $\ln\sigma^2_1$ to the stationary mean
        $E[\ln\sigma^2_t]$ (see [`mean_log_variance`][bayesvol.models.EGARCH.mean_log_variance]).

    Notes
    -----

    $$
    y_t &= \mu + \varepsilon_t, \qquad \varepsilon_t = \sigma_t e_t, \qquad e_t \sim D(0, 1), \\
    \ln\sigma^2_t &= \omega + \alpha\left(|e_{t-1}| - \sqrt{2/\pi}\right) + \gamma e_{t-1}
                     + \beta \ln\sigma^2_{t-1}.
    $$

    This is ``arch``'s ``EGARCH(p=1, o=1, q=1)``: ``arch`` centres $|e_{t-1}|$ with
    $\sqrt{2/\pi}$, the normal $E|z|$, for every innovation law, and so does this class, so the
    two likelihoods agree at the same parameters. For the t and skewed t the centring is then not exact
    ($E|z| < \sqrt{2/\pi}$), which only shifts $\omega$ by $\alpha(E|z| - \sqrt{2/\pi})$.
    The log variance is a stationary AR(1) driven by i.i.d. shocks when $|\beta| < 1$; the default
    prior on ``beta`` has support (0, 1), ``arch``'s bounds, and a prior on (-1, 1) (e.g.
    ``ScaledBeta(a, b, -1, 1)``) is allowed. $\omega$, $\alpha$ and $\gamma$ are real.
    ``arch`` also clips $\sigma^2_t$ to loose data-based bounds during its recursion; these never bind
    at sensible parameters and are not reproduced. Here $\ln\sigma^2_t$ is clipped to
    $[-700, 700]$ only, so that far-off parameters (explosive feedback when $\alpha < 0$, met
    e.g. by sampler initialisation) give a finite, negligible likelihood instead of an overflow, and the
    standardised residual $e_t$ is capped at $\pm 10^{100}$ in the likelihood and the recursion
    (at $\ln\sigma^2_t = -700$ a return of order one would give $e_t^2 \approx 10^{304}$, whose
    sum overflows): where the cap binds the density is zero (a log-likelihood of $-\infty$, which samplers
    reject; a finite but flat value there let NUTS drift far off) and the gradient is finite (zero in that
    term, never NaN) for every real $\alpha$, including the explosive $\alpha < -|\gamma|$.

    The names and their order match ``arch``'s ``mu, omega, alpha[1], gamma[1], beta[1]``, then ``nu``
    (``arch``'s ``nu`` for the t, ``eta`` for the skewed t) and ``skew`` (``arch``'s ``lambda``).

    References
    ----------
    Nelson, D. B. (1991). Conditional heteroskedasticity in asset returns: a new approach. *Econometrica*,
    59(2), 347-370.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.models.egarch import EGARCH, exact_loglik
    >>> model = EGARCH(dist="t")
    >>> params = {"mu": 0.03, "omega": 0.0, "alpha": 0.12, "gamma": -0.08, "beta": 0.97, "nu": 8.0}
    >>> sim = model.simulate(params, num_timesteps=500, key=1)
    >>> sim.y.shape, sim.variance.shape
    ((500,), (500,))
    >>> terms = exact_loglik(model, model.params_type(**params), sim.y)
    >>> terms.shape
    (500,)
    >>> bool(np.all(np.isfinite(terms)))
    True
    """

    dist: str = "normal"
    mean: str = "constant"
    priors: Mapping | None = field(default=None, compare=False, hash=False, repr=False)
    variance_start: str | float = "backcast"
    _prior_items: tuple = field(default=(), init=False, repr=False)

    params_type = EGARCHParams
    # A missing return (NaN) moves the log variance on by its conditional expectation (see update).
    supports_missing = True
    loglik_kind = _observation.LOGLIK_KIND
    latent_sites = ()
    hidden_sites = ()
    deterministic_sites = ("vol",)
    mle_opg_start = True
    mle_screen_starts = True

    def __post_init__(self):
        if self.dist not in ("normal", "t", "skewt"):
            raise ValueError(f"dist must be 'normal', 't' or 'skewt', got {self.dist!r}")
        if self.mean not in ("constant", "zero"):
            raise ValueError(f"mean must be 'constant' or 'zero', got {self.mean!r}")
        _observation.check_variance_start(self, ("backcast", "sample", "unconditional"))
        _observation.store_priors(self, default_priors())

    # --- names and priors --------------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """Free parameters in ``arch``'s order."""
        names = (("mu",) if self.mean == "constant" else ()) + ("omega", "alpha", "gamma", "beta")
        return names + {"normal": (), "t": ("nu",), "skewt": ("nu", "skew")}[self.dist]

    def prior_distributions(self) -> EGARCHParams:
        """The prior of each parameter (``None`` for unused ones)."""
        return EGARCHParams(**{name: self._merged[name] for name in self.param_names})

    def describe(self) -> str:
        """One line naming the model, for titles and attrs."""
        law = {"normal": "normal", "t": "Student-t", "skewt": "skewed-t"}[self.dist]
        return f"EGARCH(1,1,1), {self.mean} mean, {law} innovations"

    @property
    def default_forecast_method(self) -> str:
        """``"analytic"`` for normal innovations; ``"simulation"`` otherwise (see
[`expected_variance`][bayesvol.models.EGARCH.expected_variance])."""
        return "analytic" if self.dist == "normal" else "simulation"

    # --- the innovation law and its moments ---------------------------------------------------------
    def innovation(self, params):
        """Law of the standardised innovation $e_t$ (mean 0, variance 1), a NumPyro distribution."""
        if self.dist == "normal":
            return ndist.Normal(0.0, 1.0)
        if self.dist == "t":
            return StandardizedStudentT(params.nu)
        return SkewedStudentT(params.nu, params.skew)

    def abs_mean(self, params):
        r"""$E|e_t|$ of the innovation law, in closed form.

        $\sqrt{2/\pi}$ for the normal and $2c(\nu-2)/(\nu-1)$ for the unit-variance t. For the
        skewed t, $E|z| = -2E[z 1\{z<0\}]$ (as $E z = 0$), and with $u = bz + a$,
        $E[z 1\{z<0\}] = E[(u - a)1\{u < a\}]/b$ integrates piece by piece with the partial moments of
        the unit-variance t, as
        [`bayesvol.distributions.second_moment_below_zero`][bayesvol.distributions.second_moment_below_zero] does.
        """
        params = _base.as_params(self, params) if isinstance(params, Mapping) else params
        if self.dist == "normal":
            return jnp.asarray(ABS_NORMAL_MEAN)
        if self.dist == "t":
            return _unit_t_abs_moments(jnp.asarray(params.nu, dtype=float))[0]
        df, skew = jnp.asarray(params.nu, dtype=float), jnp.asarray(params.skew, dtype=float)
        a, b, log_c = _hansen_constants(df, skew)
        below, above = 1.0 - skew, 1.0 + skew
        limits = jnp.stack([jnp.minimum(a, 0.0) / below, jnp.maximum(a, 0.0) / above])
        (p0, q0), (p1, q1), _ = _unit_t_partial_moments(df, limits, log_c)
        r1 = -0.5 * _unit_t_abs_moments(df)[0]  # partial first moment at 0; the zeroth is 1/2
        lower_part = below * (below * p1 - a * p0) + above * (above * (q1 - r1) - a * (q0 - 0.5))
        return -2.0 * lower_part / b

    def mean_log_variance(self, params):
        r"""Stationary mean $E[\ln\sigma^2_t] = (\omega + \alpha(E|e| - \sqrt{2/\pi})) / (1 - \beta)$."""
        params = _base.as_params(self, params) if isinstance(params, Mapping) else params
        drift = params.omega + params.alpha * (self.abs_mean(params) - ABS_NORMAL_MEAN)
        return drift / jnp.where(jnp.abs(params.beta) < 1.0, 1.0 - params.beta, 1.0)

    def _mu(self, params):
        return params.mu if self.mean == "constant" else jnp.asarray(0.0)

    # --- parameter space ---------------------------------------------------------------------------
    def in_parameter_space(self, params):
        """False where ``|beta| >= 1`` (the log variance is then not stationary)."""
        return jnp.abs(params.beta) < 1.0

    def check_parameters(self, params) -> None:
        """Raise ``ValueError`` if concrete parameters leave the parameter space (no-op under tracing)."""
        if not _observation.is_concrete(params):
            return
        values = {n: np.asarray(getattr(params, n), dtype=float) for n in self.param_names}
        bad = [n for n, v in values.items() if not np.all(np.isfinite(v))]
        if bad:
            raise ValueError(f"parameter(s) {bad} of {self.describe()} are not finite")
        if not np.all(np.abs(values["beta"]) < 1.0):
            raise ValueError(f"|beta| = {float(np.max(np.abs(values['beta']))):.6g} >= 1: the log variance of "
                             f"{self.describe()} is not stationary at these parameters")

    # --- units of the data ---------------------------------------------------------------------------
    def rescale_params(self, params, scale):
        r"""Parameters for returns ``scale * y``: $\mu \to s\mu$, $\omega \to \omega + 2(1-\beta)\ln s$
        (so $\ln\sigma^2_t \to \ln\sigma^2_t + 2\ln s$), the rest unchanged. ``None`` with a numeric
        ``variance_start`` (a pre-sample variance in the user's units) or priors whose supports are not free of
        units."""
        multiplied = ("mu",) if self.mean == "constant" else ()
        if isinstance(self.variance_start, float) or not _base.scale_free_supports(
                self, multiplied=multiplied, shifted=("omega",)):
            return None
        values = params._asdict()
        values["omega"] = params.omega + 2.0 * (1.0 - params.beta) * jnp.log(scale)
        if self.mean == "constant":
            values["mu"] = params.mu * scale
        return EGARCHParams(**values)

    # --- the observation-driven protocol (the state is ln sigma^2_t) ------------------------------------
    def _log_presample(self, params, y):
        if isinstance(self.variance_start, float):
            return jnp.log(jnp.asarray(self.variance_start))
        if self.variance_start == "sample":
            return jnp.log(_observation.observed_mean(y - self._mu(params), power=2))
        # arch's backcast uses the residuals of the mean model fitted by least squares, a data statistic.
        residuals = y - _observation.observed_mean(y) if self.mean == "constant" else y
        return log_backcast(residuals)

    def init_state(self, params, y):
        r"""$\ln\sigma^2_1$ (see ``variance_start``); $E[\ln\sigma^2_t]$ when ``y`` is None."""
        if y is None or self.variance_start == "unconditional":
            return self.mean_log_variance(params)
        return params.omega + params.beta * self._log_presample(params, y)

    def update(self, params, log_variance, y_t):
        r"""$\ln\sigma^2_{t+1}$ from $\ln\sigma^2_t$ and $y_t$."""
        e = jnp.clip((y_t - self._mu(params)) * jnp.exp(-0.5 * log_variance), -STANDARDISED_RESIDUAL_BOUND,
                     STANDARDISED_RESIDUAL_BOUND)
        new = (params.omega + params.alpha * (jnp.abs(e) - ABS_NORMAL_MEAN) + params.gamma * e
               + params.beta * log_variance)
        return jnp.clip(new, -LOG_VARIANCE_BOUND, LOG_VARIANCE_BOUND)

    def update_missing(self, params, log_variance):
        r"""$\ln\sigma^2_{t+1}$ when $y_t$ is missing: $|e_t|$ replaced by $E|e_t|$
        ([`abs_mean`][bayesvol.models.EGARCH.abs_mean]) and $e_t$ by $E e_t = 0$, so $\ln\sigma^2_{t+1} = \omega +
        \alpha(E|e| - \sqrt{2/\pi}) + \beta\ln\sigma^2_t$, its conditional expectation given
        $\mathcal F_{t-1}$.
        """
        new = (params.omega + params.alpha * (self.abs_mean(params) - ABS_NORMAL_MEAN)
               + params.beta * log_variance)
        return jnp.clip(new, -LOG_VARIANCE_BOUND, LOG_VARIANCE_BOUND)

    def emission(self, params, log_variance):
        """Law of $y_t$ given $\\ln\\sigma^2_t$: $\\mu + \\sigma_t e_t$."""
        return _BoundedLocationScale(self.innovation(params), self._mu(params), log_variance)

    def state_from_variance(self, params, variance):
        """The state is the log of the conditional variance."""
        return jnp.log(variance)

    def variance(self, state):
        """$\\sigma^2_t$ from the state $\\ln\\sigma^2_t$."""
        return jnp.exp(state)

    def expected_variance(self, params, state, horizon: int):
        r"""$E[\sigma^2_{T+h} \mid \mathcal F_T]$, $h = 1..H$, from the state $\ln\sigma^2_{T+1}$.

        With $g(z) = \alpha(|z| - \sqrt{2/\pi}) + \gamma z$,
        $\ln\sigma^2_{T+h} = \omega\sum_{i<h-1}\beta^i + \beta^{h-1}\ln\sigma^2_{T+1}
        + \sum_{i<h-1}\beta^i g(z_{T+h-1-i})$, so $E\sigma^2_{T+h}$ is the exponential of the first two
        terms times $\prod_{i<h-1} E[e^{\beta^i g(z)}]$. For the normal,
        $E[e^{a|z| + cz}] = e^{(a+c)^2/2}\Phi(a+c) + e^{(a-c)^2/2}\Phi(a-c)$ gives it exactly.
        For the t and skewed t, $E[e^{\beta^i g(z)}]$ is infinite unless $\beta^i g$ decays in
        both tails (polynomial tails; Nelson 1991), so $h \ge 2$ gives ``inf`` wherever that fails and
        ``nan`` where the expectation is finite but has no closed form ($\alpha \le -|\gamma|$), except
        $\alpha = \gamma = 0$. Simulated return paths, and the value-at-risk read from them, stay valid.
        """
        powers = params.beta ** jnp.arange(horizon - 1)
        drift = params.omega * jnp.concatenate([jnp.zeros(1), jnp.cumsum(powers)])
        persistence = jnp.concatenate([jnp.ones(1), powers * params.beta])
        if self.dist == "normal":
            terms = -powers * params.alpha * ABS_NORMAL_MEAN + _log_mgf_abs_normal(powers * params.alpha,
                                                                                     powers * params.gamma)
            log_mgf = jnp.concatenate([jnp.zeros(1), jnp.cumsum(terms)])
            return jnp.exp(drift + persistence * state + log_mgf)
        base = jnp.exp(drift + persistence * state)
        upper, lower = powers * (params.alpha + params.gamma), powers * (params.alpha - params.gamma)
        degenerate = (params.alpha == 0.0) & (params.gamma == 0.0)
        finite = jnp.concatenate([jnp.ones(1, bool), jnp.cumsum((upper > 0.0) | (lower > 0.0)) == 0])
        beyond = jnp.where(finite, jnp.nan, jnp.inf).at[0].set(1.0)
        return jnp.where(degenerate, base, base * beyond)

    # --- consumers: simulation, NumPyro, posterior helpers -------------------------------------------
    def simulate(self, params, num_timesteps: int, key) -> EGARCHSimulation:
        r"""Simulate ``num_timesteps`` returns, starting from $\ln\sigma^2_1 = E[\ln\sigma^2_t]$.

        ``key`` is an integer seed, ``None`` (a fresh random seed) or a JAX random key.
        """
        num_timesteps, key = _base.simulation_inputs(num_timesteps, key)
        params = _base.as_params(self, params)
        self.check_parameters(params)
        y, states = _observation.simulate_path(self, params, num_timesteps, key)
        return EGARCHSimulation(y=np.asarray(y), variance=np.asarray(jnp.exp(states)))

    def filter(self, params, y):
        """Conditional variances $\\sigma^2_1, \\dots, \\sigma^2_{T+1}$ given returns ``y``."""
        params = _base.as_params(self, params)
        self.check_parameters(params)
        states, last = _observation.filter_states(self, params, jnp.asarray(y, dtype=jnp.float64))
        return np.exp(np.append(np.asarray(states), float(last)))

    def program(self, y):
        """NumPyro program: priors, the log-variance recursion, deterministic ``vol``, factor ``y``.

        The factor ``y`` holds the exact one-step-ahead log densities (one per time step).
        """
        params = _base.sample_params(self)
        states, _ = _observation.filter_states(self, params, y)
        numpyro.deterministic("vol", jnp.exp(0.5 * states))
        numpyro.factor("y", _observation.loglik_from_states(self, params, states, y))

    def pointwise_loglik_draws(self, draws: dict, y):
        """Exact ``log p(y_t | y_{1:t-1}, theta)`` for every posterior draw, dims ``(chain, draw, time)``."""
        return _observation.loglik_draws(self, draws, y)

    def predictive_draws(self, draws: dict, key):
        """One replicated series per draw from the one-step-ahead laws along the draw's ``vol``."""
        return _observation.predictive_draws(self, draws, key)

    def start_values(self, y) -> list[dict]:
        """Start values for maximum likelihood, ``omega`` matching the log sample variance (as ``arch`` does).

        ``bayesvol.fit`` screens them by their log-likelihood and optimises from the best one.
        """
        y = _observation.observed_values(y)
        mu0 = float(np.mean(y)) if self.mean == "constant" else 0.0
        target = float(np.log(np.mean((y - mu0) ** 2)))
        starts = []
        for alpha, gamma, beta in ((0.1, -0.05, 0.95), (0.15, -0.1, 0.98), (0.2, 0.0, 0.9)):
            start = {"omega": (1.0 - beta) * target, "alpha": alpha, "gamma": gamma, "beta": beta}
            if self.mean == "constant":
                start["mu"] = mu0
            if self.dist in ("t", "skewt"):
                start["nu"] = 8.0
            if self.dist == "skewt":
                start["skew"] = 0.0
            starts.append(start)
        return starts


def exact_loglik(model, params, y, **options):
    """Exact pointwise log-likelihood ``log p(y_t | y_{1:t-1}, theta)`` of an [`EGARCH`][bayesvol.models.EGARCH] model.

    Parameters
    ----------
    model : EGARCH
    params : EGARCHParams
    y : array_like
        Returns, one dimension.
    **options
        None are accepted.

    Returns
    -------
    jax.Array
        One term per observation; ``-inf`` where ``|beta| >= 1`` under tracing.

    Raises
    ------
    TypeError
        For any option.
    ValueError
        If concrete parameters leave the parameter space.
    """
    if options:
        raise TypeError(f"the exact EGARCH log-likelihood takes no options, got {sorted(options)}")
    model.check_parameters(params)
    return _observation.pointwise_loglik(model, params, jnp.asarray(y, dtype=jnp.float64))
