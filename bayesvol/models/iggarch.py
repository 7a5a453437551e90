"""Inverse Gaussian GARCH (Christoffersen, Heston & Jacobs 2006), with one or two variance components."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes

import bayesvol.models._base as _base
import bayesvol.models._observation as _observation
from bayesvol.distributions import InverseGaussian
from bayesvol.distributions.priors import ScaledBeta
from bayesvol.models._protocol import ObservationDrivenModelBase

__all__ = ["IGGARCH", "IGGARCHParams", "IGGARCHSimulation", "SupportReport", "exact_loglik"]


class IGGARCHParams(NamedTuple):
    """Parameters of [`IGGARCH`][bayesvol.models.IGGARCH]; those the model does not use are ``None``."""

    lam: jax.Array | None = None
    eta: jax.Array | None = None
    w: jax.Array | None = None
    b: jax.Array | None = None
    c: jax.Array | None = None
    a: jax.Array | None = None
    sigma2: jax.Array | None = None
    rho_s: jax.Array | None = None
    rho_q: jax.Array | None = None
    c_s: jax.Array | None = None
    c_q: jax.Array | None = None
    a_s: jax.Array | None = None
    a_q: jax.Array | None = None


class IGGARCHSimulation(NamedTuple):
    """Simulated returns ``y`` ($R_t$), variances ``variance`` ($h_t$) and IG ``shock`` ($y_t$).

    ``short_run`` and ``long_run`` hold $s_t$ and $q_t$ for two components (else ``None``).
    """

    y: np.ndarray
    variance: np.ndarray
    shock: np.ndarray
    short_run: np.ndarray | None = None
    long_run: np.ndarray | None = None


class SupportReport(NamedTuple):
    """Where returns fall outside the one-sided support at given parameters (see
[`IGGARCH.support`][bayesvol.models.IGGARCH.support]).

    ``outside`` is a boolean per observation, ``bound`` the edge $r + \\nu h_t$ of the support,
    ``side`` is ``"below"`` when returns must lie below the bound (``eta < 0``) and ``"above"`` otherwise.
    """

    outside: np.ndarray
    bound: np.ndarray
    side: str

    @property
    def num_outside(self) -> int:
        return int(self.outside.sum())

    def message(self, index=None) -> str:
        """A sentence naming the first offending observation, or an empty string when all are inside."""
        if not self.outside.any():
            return ""
        first = int(np.flatnonzero(self.outside)[0])
        where = index[first] if index is not None else first
        return (f"{self.num_outside} return(s) lie outside the IG-GARCH support (returns must lie {self.side} "
                f"r + nu*h_t, nu = lam - 1/eta); first at {where}, bound {self.bound[first]:.6g}")


class NegativeHalfNormal(ndist.Distribution):
    """Mirror image of a half-normal: ``-|X|``, ``X ~ N(0, scale^2)``; support ``(-inf, 0)``."""

    arg_constraints = {"scale": constraints.positive}
    support = constraints.less_than(0.0)
    reparametrized_params = ["scale"]

    def __init__(self, scale=1.0, *, validate_args=None):
        self.scale = jnp.asarray(scale, dtype=float)
        super().__init__(batch_shape=jnp.shape(self.scale), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        return -jnp.abs(self.scale * jax.random.normal(key, sample_shape + self.batch_shape))

    def log_prob(self, value):
        return ndist.HalfNormal(self.scale).log_prob(-value)


def default_priors() -> dict:
    r"""Default priors of [`IGGARCH`][bayesvol.models.IGGARCH], meant for percent daily returns (replace them for other
units).

    ``lam ~ N(0, 1)``, ``eta ~ -HalfNormal(0.25)`` (negative: returns bounded above, left-skewed, as for
    equity indices; give ``eta`` a prior on positive values for the mirror image), ``w ~ HalfNormal(0.1)``,
    ``b ~ N(0, 0.25^2)``, ``c ~ HalfNormal(0.01)``, ``a ~ HalfNormal(5)``; two components: ``sigma2 ~
    HalfNormal(5)``, ``rho_s ~ Beta(2, 2)``, ``rho_q ~ Beta(20, 1)`` (on (0, 1)), ``c_s, c_q ~
    HalfNormal(0.01)``, ``a_s, a_q ~ HalfNormal(5)``.

    The scales follow the magnitudes of Christoffersen, Heston & Jacobs (2006) in percent units
    ($|\eta|$ of 0.05 to 0.3, persistence shares $c/\eta^2$ and $a\eta^2$ below one): at
    the prior medians the persistence $b + c/\eta^2 + a\eta^2$ is about 0.33, and the median of the
    persistence over prior draws about 0.6, so that NUTS starts (at the prior median) inside the parameter
    space. Broader priors (e.g. ``a ~ HalfNormal(50)``) put their median at a persistence near 10, where the
    likelihood is $-\infty$ and every transition diverges.
    """
    return {
        "lam": ndist.Normal(0.0, 1.0),
        "eta": NegativeHalfNormal(0.25),
        "w": ndist.HalfNormal(0.1),
        "b": ndist.Normal(0.0, 0.25),
        "c": ndist.HalfNormal(0.01),
        "a": ndist.HalfNormal(5.0),
        "sigma2": ndist.HalfNormal(5.0),
        "rho_s": ScaledBeta(2.0, 2.0, 0.0, 1.0),
        "rho_q": ScaledBeta(20.0, 1.0, 0.0, 1.0),
        "c_s": ndist.HalfNormal(0.01),
        "c_q": ndist.HalfNormal(0.01),
        "a_s": ndist.HalfNormal(5.0),
        "a_q": ndist.HalfNormal(5.0),
    }


class IGReturn(ndist.Distribution):
    r"""Law of $R = \ell + \eta Y$ with $Y \sim IG(\delta)$, $\delta = h/\eta^2$.

    $\ell = r + \nu h$ is the location ``loc``; the variance of $R$ is ``h``. The log density
    is $-\infty$ where $(R - \ell)/\eta \le 0$ or $h \le 0$, with finite gradients.
    """

    arg_constraints = {"loc": constraints.real, "eta": constraints.real, "h": constraints.real}
    support = constraints.real

    def __init__(self, loc, eta, h, *, validate_args=None):
        self.loc, self.eta, self.h = promote_shapes(loc, eta, h)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(loc), jnp.shape(eta), jnp.shape(h))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    @property
    def delta(self):
        return self.h / self.eta**2

    def shock(self, value):
        """The IG shock $y = (R - \\ell)/\\eta$ implied by a return: the one place it is computed
        (log density, variance recursion and simulation all call this)."""
        return (value - self.loc) / self.eta

    def inside(self, value):
        """True where ``value`` lies in the support (and the variance is positive)."""
        return (self.shock(value) > 0.0) & (self.h > 0.0)

    def log_prob(self, value):
        ok = self.inside(value)
        # Harmless stand-ins off the support keep values and gradients finite; the where discards them.
        shock = jnp.where(ok, self.shock(value), 1.0)
        delta = jnp.where(ok, self.delta, 1.0)
        terms = InverseGaussian.standard(delta).log_prob(shock) - jnp.log(jnp.abs(self.eta))
        return jnp.where(ok, terms, -jnp.inf)

    def sample(self, key, sample_shape=()):
        delta = jnp.broadcast_to(self.delta, self.batch_shape)
        return self.loc + self.eta * InverseGaussian.standard(delta).sample(key, sample_shape)

    @property
    def mean(self):
        return self.loc + self.h / self.eta

    @property
    def variance(self):
        return jnp.broadcast_to(self.h, self.batch_shape)


@dataclass(frozen=True)
class IGGARCH(ObservationDrivenModelBase):
    r"""Inverse Gaussian GARCH of Christoffersen, Heston & Jacobs (2006), one or two components.

    Parameters
    ----------
    components : {1, 2}
        One variance equation (``lam, eta, w, b, c, a``) or the short-run/long-run components
        (``lam, eta, sigma2, rho_s, rho_q, c_s, c_q, a_s, a_q``).
    r : float
        Risk-free rate per period, in the units of the returns (a fixed number, not estimated).
    priors : mapping, optional
        Parameter name -> NumPyro distribution, overriding `default_priors`. The sign of ``eta`` is
        fixed by its prior's support (negative by default).
    variance_start : {"sample", "unconditional"} or float
        $h_1$: the sample variance of the returns (default), the model's unconditional variance, or a
        given number. With two components $s_1 = 0$ and $q_1 = h_1$.

    Notes
    -----
    Returns $R_t$ (not excess returns: ``r`` is subtracted inside) follow

    $$
    R_t = r + \nu h_t + \eta y_t, \qquad y_t \sim IG(\delta_t), \quad \delta_t = h_t / \eta^2,
    \qquad \nu = \lambda - 1/\eta,
    $$

    where $IG(\delta)$ has density $f(y;\delta) = \delta (2\pi y^3)^{-1/2}
    \exp\{-(\sqrt y - \delta/\sqrt y)^2/2\}$, mean and variance $\delta$. Equivalently
    $R_t = r + \lambda h_t + (\eta y_t - h_t/\eta)$, the bracket a zero-mean shock of variance
    $h_t$ and skewness $3\,\mathrm{sign}(\eta)/\sqrt{\delta_t}$. One component:

    $$
    h_{t+1} = w + b h_t + c\, y_t + a\, h_t^2 / y_t,
    $$

    persistence $b + c/\eta^2 + a\eta^2$ and unconditional variance
    $(w + a\eta^4)/(1 - \text{persistence})$. Two components ($h_t = q_t + s_t$):

    $$
    s_{t+1} &= \rho_s s_t + \zeta_{s,t}, \qquad
    q_{t+1} = \sigma^2 + \rho_q (q_t - \sigma^2) + \zeta_{q,t}, \\
    \zeta_{i,t} &= c_i y_t + a_i h_t^2 / y_t - c_i h_t/\eta^2 - a_i \eta^2 h_t - a_i \eta^4
    \quad (\text{mean zero}).
    $$

    The shock is the model's $y_t = (R_t - r - \nu h_t)/\eta$, which must be positive: returns are
    bounded on one side by $r + \nu h_t$ (above when $\eta < 0$). Where parameters put an
    observation outside, the log-likelihood is $-\infty$ (no NaNs in values or gradients), a
    warning names the observation, and [`support`][bayesvol.models.IGGARCH.support] reports all of them. The parameter
    space also needs persistence below one and, for one component, $b + 2\sqrt{ac} \ge 0$ (by
    $cy + ah^2/y \ge 2h\sqrt{ac}$ this keeps $h_t$ positive whatever the shocks); the two
    -component variance is checked along the path.

    Parameters keep their meaning across units: with returns scaled by $k$ (e.g. 100 for percent),
    $\eta, w, c, a, \lambda$ scale as $k, k^2, k^2, k^{-2}, k^{-1}$ and $b$ is unchanged.

    Examples
    --------
    >>> import bayesvol
    >>> model = bayesvol.models.IGGARCH()
    >>> params = {"lam": 0.02, "eta": -0.25, "w": 0.01, "b": -0.19, "c": 0.054, "a": 4.9}
    >>> round(float(model.persistence(params)), 4)
    0.9802
    >>> sim = bayesvol.simulate(model, params, num_timesteps=500, seed=0)
    >>> bool((sim.shock > 0).all())
    True
    """

    components: int = 1
    r: float = 0.0
    priors: Mapping | None = field(default=None, compare=False, hash=False, repr=False)
    variance_start: str | float = "sample"
    _prior_items: tuple = field(default=(), init=False, repr=False)

    params_type = IGGARCHParams
    # A missing return (NaN) moves the variance on by its conditional expectation (see update).
    supports_missing = True
    loglik_kind = _observation.LOGLIK_KIND
    latent_sites = ()
    hidden_sites = ()
    deterministic_sites = ("vol",)
    # bayesvol.fit on a 2-D array (time x series) estimates every column at once.
    supports_batch_fit = True
    # bayesvol.forecast simulates IG-GARCH variance paths unless asked for the closed form.
    default_forecast_method = "simulation"

    def __post_init__(self):
        if self.components not in (1, 2) or isinstance(self.components, bool):
            raise ValueError(f"components must be 1 or 2, got {self.components!r}")
        if isinstance(self.r, bool) or not isinstance(self.r, (int, float)) or not np.isfinite(self.r):
            raise ValueError(f"r must be a finite number (risk-free rate per period), got {self.r!r}")
        object.__setattr__(self, "r", float(self.r))
        _observation.check_variance_start(self, ("sample", "unconditional"))
        _observation.store_priors(self, default_priors())

    @property
    def param_names(self) -> tuple[str, ...]:
        """Free parameters, in the order of the equations."""
        if self.components == 1:
            return ("lam", "eta", "w", "b", "c", "a")
        return ("lam", "eta", "sigma2", "rho_s", "rho_q", "c_s", "c_q", "a_s", "a_q")

    def prior_distributions(self) -> IGGARCHParams:
        """The prior of each parameter (``None`` for unused ones)."""
        return IGGARCHParams(**{name: self._merged[name] for name in self.param_names})

    def describe(self) -> str:
        """One line naming the model, for titles and attrs."""
        kind = "one component" if self.components == 1 else "two components"
        return f"IG-GARCH ({kind}, r = {self.r:g})"

    @property
    def eta_sign(self) -> float:
        """Sign of ``eta`` allowed by its prior's support (-1 or +1)."""
        support = self.prior_distributions().eta.support
        return -1.0 if bool(support(jnp.asarray(-1.0))) else 1.0

    # --- moments ---------------------------------------------------------------------------------
    def _persistence(self, params):
        if self.components == 1:
            return params.b + params.c / params.eta**2 + params.a * params.eta**2
        return jnp.maximum(params.rho_s, params.rho_q)

    def persistence(self, params):
        r"""One component: $b + c/\eta^2 + a\eta^2$; two: the larger of $\rho_s, \rho_q$.

        Expected variances revert to the unconditional one at this rate (each component at its own
        $\rho$ with two components).
        """
        return self._persistence(_base.as_params(self, params, batched=True))

    def _unconditional_variance(self, params):
        if self.components == 2:
            return params.sigma2
        p = self._persistence(params)
        return jnp.where(p < 1.0, (params.w + params.a * params.eta**4) / jnp.where(p < 1.0, 1.0 - p, 1.0), jnp.inf)

    def unconditional_variance(self, params):
        r"""One component $(w + a\eta^4)/(1 - \text{persistence})$; two components $\sigma^2$."""
        return self._unconditional_variance(_base.as_params(self, params))

    def half_life(self, params):
        r"""Periods for a variance shock to halve, $\log ½ / \log(\text{persistence})$."""
        p = self.persistence(params)
        return jnp.where(p < 1.0, jnp.log(0.5) / jnp.log(jnp.where(p < 1.0, p, 0.5)), jnp.inf)

    def nu(self, params):
        r"""$\nu = \lambda - 1/\eta$, the coefficient of $h_t$ in the return equation."""
        return params.lam - 1.0 / params.eta

    def rescale_params(self, params, scale):
        r"""Parameters for returns ``scale * y`` ($h_t \to s^2 h_t$, the IG shock $y_t$ unchanged):
        $\lambda \to \lambda/s$, $\eta \to s\eta$, $w, \sigma^2, c, c_s, c_q \to s^2 \cdot$,
        $a, a_s, a_q \to s^{-2} \cdot$, the rest unchanged. ``None`` when ``r`` is not zero or
        ``variance_start`` is numeric (both in the user's units) or priors' supports are not free of units."""
        if self.components == 1:
            squared, inverse_squared = ("w", "c"), ("a",)
        else:
            squared, inverse_squared = ("sigma2", "c_s", "c_q"), ("a_s", "a_q")
        if self.r != 0.0 or isinstance(self.variance_start, float) or not _base.scale_free_supports(
                self, multiplied=("lam", "eta") + squared + inverse_squared):
            return None
        values = params._asdict()
        values.update(lam=params.lam / scale, eta=params.eta * scale)
        values.update({n: getattr(params, n) * scale**2 for n in squared})
        values.update({n: getattr(params, n) / scale**2 for n in inverse_squared})
        return IGGARCHParams(**values)

    def in_parameter_space(self, params):
        """Persistence below one and, with one component, ``b + 2 sqrt(a c) >= 0``."""
        ok = self._persistence(params) < 1.0
        if self.components == 1:
            ok = ok & (params.b + 2.0 * jnp.sqrt(params.a * params.c) >= 0.0)
        return ok

    def check_parameters(self, params) -> None:
        """Raise ``ValueError`` if concrete parameters leave the parameter space (no-op under tracing)."""
        if not _observation.is_concrete(params):
            return
        p = float(self._persistence(params))
        if not p < 1.0:
            raise ValueError(f"persistence {p:.6g} >= 1: {self.describe()} is not stationary at these parameters")
        if self.components == 1:
            floor = float(params.b + 2.0 * jnp.sqrt(params.a * params.c))
            if floor < 0.0:
                raise ValueError(f"b + 2*sqrt(a*c) = {floor:.6g} < 0: the variance of {self.describe()} could "
                                 "turn negative")

    # --- the observation-driven protocol -----------------------------------------------------------
    def _first_variance(self, params, y):
        if y is None or self.variance_start == "unconditional":
            return self._unconditional_variance(params)
        if isinstance(self.variance_start, float):
            return jnp.asarray(self.variance_start)
        return jnp.var(y, where=~jnp.isnan(y))  # over the observed returns

    def init_state(self, params, y):
        """$h_1$ (one component) or $(s_1, q_1) = (0, h_1)$."""
        h1 = self._first_variance(params, y)
        return h1 if self.components == 1 else (jnp.zeros_like(h1), h1)

    def variance(self, state):
        """$h_t$ from the state."""
        return state if self.components == 1 else state[0] + state[1]

    def state_from_variance(self, params, variance):
        """A state with the given $h_t$ (the emission depends on $h_t$ only)."""
        return variance if self.components == 1 else (jnp.zeros_like(variance), variance)

    def expected_variance(self, params, state, horizon: int):
        r"""$E[h_{T+k} \mid \mathcal F_T]$, $k = 1..H$, from the state for $T+1$ (closed form).

        One component: $\bar h + p^{k-1}(h_{T+1} - \bar h)$ with persistence $p$, because
        $E[y_t] = h_t/\eta^2$ and $E[h_t^2/y_t] = \eta^2 h_t + \eta^4$. Two components:
        $\rho_s^{k-1} s_{T+1} + \sigma^2 + \rho_q^{k-1}(q_{T+1} - \sigma^2)$ (the shocks have mean zero).
        """
        steps = jnp.arange(horizon)
        if self.components == 1:
            long_run = self._unconditional_variance(params)
            return long_run + self._persistence(params) ** steps * (state - long_run)
        s, q = state
        return params.rho_s**steps * s + params.sigma2 + params.rho_q**steps * (q - params.sigma2)

    def emission(self, params, state) -> IGReturn:
        """Law of $R_t$ given the state: $r + \\nu h_t + \\eta y_t$."""
        h = self.variance(state)
        return IGReturn(self.r + self.nu(params) * h, params.eta, h)

    def shock(self, params, state, y):
        r"""The IG shock $y_t = (R_t - r - \nu h_t)/\eta$ implied by returns ``y`` given the state (batched)."""
        return self.emission(params, state).shock(y)

    def component_shocks(self, params, h, shock):
        r"""Mean-zero shocks $(\zeta_{s,t}, \zeta_{q,t})$ of the two components given $h_t$ and $y_t$.

        $\zeta_{i,t} = c_i y_t + a_i h_t^2/y_t - c_i h_t/\eta^2 - a_i\eta^2 h_t - a_i\eta^4$.
        """
        eta2 = params.eta**2

        def zeta(c_i, a_i):
            return c_i * shock + a_i * h**2 / shock - c_i * h / eta2 - a_i * eta2 * h - a_i * eta2**2

        return zeta(params.c_s, params.a_s), zeta(params.c_q, params.a_q)

    def update(self, params, state, y_t):
        """The state for $t+1$ given $R_t$; outside the support a finite stand-in is used."""
        law = self.emission(params, state)
        ok = law.inside(y_t)
        # Off the support the likelihood is already -inf; stand-ins keep the recursion (and gradients) finite.
        h = jnp.where(ok, law.h, 1.0)
        shock = jnp.where(ok, law.shock(y_t), h / params.eta**2)
        if self.components == 1:
            return params.w + params.b * h + params.c * shock + params.a * h**2 / shock
        s, q = state
        s = jnp.where(ok, s, 0.0)
        q = jnp.where(ok, q, 1.0)
        zeta_s, zeta_q = self.component_shocks(params, h, shock)
        return params.rho_s * s + zeta_s, params.sigma2 + params.rho_q * (q - params.sigma2) + zeta_q

    def update_missing(self, params, state):
        r"""The state for $t+1$ when $R_t$ is missing: the functions of the unseen IG shock replaced by
        their conditional expectations given $\mathcal F_{t-1}$, $E[y_t] = h_t/\eta^2$ and
        $E[h_t^2/y_t] = \eta^2 h_t + \eta^4$.

        One component: $h_{t+1} = w + b h_t + c h_t/\eta^2 + a(\eta^2 h_t + \eta^4)$; two components:
        zero shocks, $\zeta_{s,t} = \zeta_{q,t} = 0$. The variance moves on as its one-step forecast.
        """
        eta2 = params.eta**2
        if self.components == 1:
            h = state
            return params.w + params.b * h + params.c * h / eta2 + params.a * (eta2 * h + eta2**2)
        s, q = state
        return params.rho_s * s, params.sigma2 + params.rho_q * (q - params.sigma2)

    # --- consumers ---------------------------------------------------------------------------------
    def support(self, params, y) -> SupportReport:
        """Which returns lie outside the support at ``params`` (filtering ``y`` with the model)."""
        params = _base.as_params(self, params)
        y = jnp.asarray(y, dtype=jnp.float64)
        states, _ = _observation.filter_states(self, params, y)
        emission = self.emission(params, states)
        return SupportReport(outside=np.asarray(~emission.inside(y) & ~jnp.isnan(y)), bound=np.asarray(emission.loc),
                             side="below" if float(params.eta) < 0 else "above")

    def simulate(self, params, num_timesteps: int, key) -> IGGARCHSimulation:
        """Simulate returns from the unconditional variance; raises if $h_t$ turns non-positive.

        ``key`` is an integer seed, ``None`` (a fresh random seed) or a JAX random key; the path runs
        [`update`][bayesvol.models.IGGARCH.update] on draws from [`emission`][bayesvol.models.IGGARCH.emission].
        """
        num_timesteps, key = _base.simulation_inputs(num_timesteps, key)
        params = _base.as_params(self, params)
        self.check_parameters(params)
        y, states = _observation.simulate_path(self, params, num_timesteps, key)
        h = np.asarray(self.variance(states))
        if not np.all(h > 0):
            first = int(np.flatnonzero(~(h > 0))[0])
            raise ValueError(f"the simulated variance h_t turned non-positive at step {first}; these parameters "
                             "do not keep the variance positive")
        shock = np.asarray(self.shock(params, states, y))
        parts = (None, None) if self.components == 1 else (np.asarray(states[0]), np.asarray(states[1]))
        return IGGARCHSimulation(np.asarray(y), h, shock, *parts)

    def filter(self, params, y):
        """Conditional variances $h_1, \\dots, h_{T+1}$ given returns ``y``."""
        params = _base.as_params(self, params)
        self.check_parameters(params)
        states, last = _observation.filter_states(self, params, jnp.asarray(y, dtype=jnp.float64))
        return np.append(np.asarray(self.variance(states)), float(self.variance(last)))

    def program(self, y):
        """NumPyro program: priors, the variance recursion, deterministic ``vol``, factor ``y`` (exact)."""
        params = _base.sample_params(self)
        states, _ = _observation.filter_states(self, params, y)
        numpyro.deterministic("vol", jnp.sqrt(jnp.abs(self.variance(states))))
        numpyro.factor("y", _observation.loglik_from_states(self, params, states, y))

    def pointwise_loglik_draws(self, draws: dict, y):
        """Exact ``log p(R_t | R_{1:t-1}, theta)`` for every posterior draw, dims ``(chain, draw, time)``."""
        return _observation.loglik_draws(self, draws, y)

    def predictive_draws(self, draws: dict, key):
        """One replicated series per draw from the one-step-ahead laws along the draw's ``vol``."""
        return _observation.predictive_draws(self, draws, key)

    def start_values(self, y) -> list[dict]:
        """Start values inside the support of ``y``.

        Typical shapes of the variance dynamics (one from the published CHJ (2006) estimates, rescaled to
        the data's variance) are tried over a grid of ``|eta|``: a smaller ``|eta|`` moves the bound
        $r + \\nu h_t$ away from the data. For each shape the grid point with the highest
        log-likelihood is kept, so every start has a finite log-likelihood.
        """
        data = np.asarray(y, dtype=np.float64)
        y = _observation.observed_values(data)
        variance = float(np.var(y))
        lam0 = float((np.mean(y) - self.r) / variance)
        sign = self.eta_sign
        abs_eta = 0.25 * math.sqrt(variance / 2.4) * np.geomspace(4.0, 1.0 / 64.0, 25)
        candidates = []
        if self.components == 1:
            # (persistence shares of c/eta^2 and a*eta^2, b); the first from CHJ (2006) in percent units.
            for share_c, share_a, b in ((0.88, 0.30, -0.19), (0.80, 0.15, 0.02), (0.60, 0.10, 0.28)):
                persistence = share_c + share_a + b
                for e in abs_eta:
                    a = share_a / e**2
                    w = max(variance * (1.0 - persistence) - a * e**4, 0.05 * variance * (1.0 - persistence))
                    candidates.append({"lam": lam0, "eta": sign * e, "w": w, "b": b, "c": share_c * e**2, "a": a})
        else:
            for rho_s, rho_q, k in ((0.7, 0.99, 1.0), (0.5, 0.98, 0.5)):
                for e in abs_eta:
                    # Shocks of a size like the published component fits: c_i/eta^2 and a_i eta^2 of order one.
                    candidates.append({"lam": lam0, "eta": sign * e, "sigma2": variance, "rho_s": rho_s,
                                       "rho_q": rho_q, "c_s": 0.5 * k * e**2, "c_q": 0.3 * k * e**2,
                                       "a_s": 0.3 * k / e**2, "a_q": 0.1 * k / e**2})
        values = _candidate_logliks(self, candidates, data)
        per_shape = len(abs_eta)
        starts = []
        for i in range(0, len(candidates), per_shape):
            block = values[i:i + per_shape]
            if np.isfinite(block).any():
                starts.append(candidates[i + int(np.nanargmax(np.where(np.isfinite(block), block, -np.inf)))])
        if not starts:
            raise ValueError("no start value has a finite IG-GARCH log-likelihood on these data; pass start=... "
                             "with |eta| small enough that every return lies inside the support")
        return starts


def _candidate_logliks(model, candidates: list[dict], y) -> np.ndarray:
    names = model.param_names
    stacked = {n: jnp.asarray([c[n] for c in candidates], dtype=jnp.float64) for n in names}
    return np.asarray(_loglik_batch(model, stacked, jnp.asarray(y)))


@partial(jax.jit, static_argnums=0)
def _loglik_batch(model, stacked, y):
    def one(v):
        return jnp.sum(_observation.pointwise_loglik(model, model.params_type(**v), y))

    return jax.vmap(one)(stacked)


def exact_loglik(model: IGGARCH, params: IGGARCHParams, y, **options):
    """Exact pointwise log-likelihood of an [`IGGARCH`][bayesvol.models.IGGARCH] model (differentiable).

    For concrete inputs a ``RuntimeWarning`` names the first return outside the support (where the value is
    ``-inf``).
    """
    if options:
        raise TypeError(f"the exact IG-GARCH log-likelihood takes no options, got {sorted(options)}")
    model.check_parameters(params)
    values = _observation.pointwise_loglik(model, params, y)
    if _observation.is_concrete(params, y):
        states, _ = _observation.filter_states(model, params, y)
        emission = model.emission(params, states)
        # A missing return (NaN) is not outside the support: it has no value.
        report = SupportReport(outside=np.asarray(~emission.inside(y) & ~jnp.isnan(y)),
                               bound=np.asarray(emission.loc), side="below" if float(params.eta) < 0 else "above")
        if report.num_outside:
            warnings.warn(report.message() + "; the log-likelihood is -inf", RuntimeWarning, stacklevel=3)
    return values
