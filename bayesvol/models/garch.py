"""GARCH(1,1) and GJR-GARCH(1,1,1) with normal, Student-t or Hansen skewed-t innovations."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
from numpyro.distributions import biject_to
from numpyro.distributions.transforms import StickBreakingTransform

import bayesvol.models._base as _base
import bayesvol.models._observation as _observation
from bayesvol._validation import StationarityWarning
from bayesvol.distributions import SkewedStudentT, StandardizedStudentT, second_moment_below_zero
from bayesvol.distributions.priors import ScaledBeta, ShiftedExponential
from bayesvol.models._protocol import ObservationDrivenModelBase

__all__ = ["GARCH", "GARCHParams", "GARCHSimulation", "backcast", "exact_loglik"]

BACKCAST_DECAY = 0.94
BACKCAST_WINDOW = 75


# Sample site of the stick-breaking coordinates of (alpha, [gamma,] beta) in the NumPyro program.
STATIONARY_SITE = "stationary_coords"


class GARCHParams(NamedTuple):
    """Parameters of [`GARCH`][bayesvol.models.GARCH]; those the model does not use are ``None``."""

    mu: jax.Array | None = None
    omega: jax.Array | None = None
    alpha: jax.Array | None = None
    gamma: jax.Array | None = None
    beta: jax.Array | None = None
    nu: jax.Array | None = None
    skew: jax.Array | None = None


class GARCHSimulation(NamedTuple):
    """Simulated returns ``y`` and their conditional variances ``variance`` ($\\sigma^2_t$)."""

    y: np.ndarray
    variance: np.ndarray


def default_priors() -> dict:
    """Default priors of [`GARCH`][bayesvol.models.GARCH] (percent returns in mind; every one replaceable).

    ``mu ~ N(0, 1)``, ``omega ~ HalfNormal(1)``, ``alpha ~ Beta(1.5, 10)``, ``beta ~ Beta(6, 2)``,
    ``gamma ~ N(0, 0.5^2)``, ``nu - 2 ~ Exponential(0.1)``, ``(skew + 1)/2 ~ Beta(2, 2)``; the joint prior
    is their product truncated to the parameter space (``alpha + gamma >= 0`` and persistence below one).
    The prior medians lie inside that region, so NUTS can start from them.
    """
    return {
        "mu": ndist.Normal(0.0, 1.0),
        "omega": ndist.HalfNormal(1.0),
        "alpha": ndist.Beta(1.5, 10.0),
        "gamma": ndist.Normal(0.0, 0.5),
        "beta": ndist.Beta(6.0, 2.0),
        "nu": ShiftedExponential(0.1, 2.0),
        "skew": ScaledBeta(2.0, 2.0, -1.0, 1.0),
    }


def backcast(residuals) -> jax.Array:
    r"""Exponentially weighted mean of the first squared residuals, the start value ``arch`` uses.

    $\sum_{j<\tau} w_j e_j^2$ with $w_j \propto 0.94^j$, $\sum w_j = 1$ and
    $\tau = \min(75, T)$. Missing residuals (NaN) in the window get weight zero (the others keep
    theirs, renormalised); when the whole window is missing, the mean of the observed squared residuals.
    """
    return _observation.backcast(residuals, BACKCAST_DECAY, BACKCAST_WINDOW)


@dataclass(frozen=True)
class GARCH(ObservationDrivenModelBase):
    r"""GARCH(1,1) and GJR-GARCH(1,1,1) with a constant or zero mean.

    Parameters
    ----------
    vol : {"garch", "gjr"}
        Symmetric GARCH(1,1), or GJR-GARCH(1,1,1) with an extra response ``gamma`` to negative shocks.
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
        How $\sigma^2_1$ is set. With a pre-sample value $b$,
        $\sigma^2_1 = \omega + (\alpha + \gamma/2 + \beta) b$ (``arch``'s convention: the pre-sample
        squared shock and variance both equal $b$, half the shock counted as negative).
        ``"backcast"`` (default) takes $b$ = `backcast` of the demeaned data (of ``y`` itself
        for a zero mean), exactly as ``arch`` does, so log-likelihoods agree with ``arch``;
        ``"sample"`` takes $b = T^{-1}\sum_t (y_t - \mu)^2$ (the Fiorentini–Calzolari–Panattoni
        benchmark convention); a float is $b$ itself (``arch``'s ``backcast=`` argument);
        ``"unconditional"`` sets $\sigma^2_1 = \omega / (1 - \kappa)$.

    Notes
    -----

    $$
    y_t &= \mu + \varepsilon_t, \qquad \varepsilon_t = \sigma_t z_t, \qquad z_t \sim D(0, 1), \\
    \sigma^2_t &= \omega + \left(\alpha + \gamma\, 1\{\varepsilon_{t-1} < 0\}\right)
                  \varepsilon^2_{t-1} + \beta \sigma^2_{t-1}.
    $$

    ``vol="garch"`` drops $\gamma$. The parameter space is $\omega > 0$, $\alpha \ge 0$,
    $\beta \ge 0$, $\alpha + \gamma \ge 0$ (so the variance stays positive) and persistence
    $\kappa = \alpha + \beta + \gamma\, E[z^2 1\{z<0\}] < 1$ (covariance stationarity), where
    $E[z^2 1\{z<0\}]$ is ½ for the symmetric laws and a closed form for the skewed t. The others come
    from the prior supports. The log-likelihood is $-\infty$ where $\alpha + \gamma < 0$; it is
    defined at any persistence ([`bayesvol.log_likelihood`][bayesvol.log_likelihood] evaluates it at $\kappa \ge 1$ with
    a [`StationarityWarning`][bayesvol.StationarityWarning]), while the prior and [`bayesvol.fit`][bayesvol.fit]
    restrict the parameters to $\kappa < 1$ (``fit(..., stationary=False)`` does not; see
    [`nonstationary_variant`][bayesvol.models.GARCH.nonstationary_variant]).

    The names and their order match ``arch``'s ``arch_model(..., p=1, o=1, q=1)``: ``mu, omega,
    alpha[1], gamma[1], beta[1]``, then ``nu`` (``arch``'s ``nu`` for the t, ``eta`` for the skewed t) and
    ``skew`` (``arch``'s ``lambda``).

    Examples
    --------
    >>> import bayesvol
    >>> model = bayesvol.models.GARCH(vol="gjr", dist="t")
    >>> params = {"mu": 0.03, "omega": 0.02, "alpha": 0.05, "gamma": 0.08, "beta": 0.88, "nu": 8.0}
    >>> round(float(model.persistence(params)), 4)
    0.97
    >>> sim = bayesvol.simulate(model, params, num_timesteps=1000, seed=1)
    >>> sim.y.shape
    (1000,)
    >>> terms = bayesvol.log_likelihood(model, params, sim.y, pointwise=True)
    >>> terms.shape
    (1000,)

    ``bayesvol.fit(model, sim.y)`` estimates the parameters by maximum likelihood.
    """

    vol: str = "garch"
    dist: str = "normal"
    mean: str = "constant"
    priors: Mapping | None = field(default=None, compare=False, hash=False, repr=False)
    variance_start: str | float = "backcast"
    _prior_items: tuple = field(default=(), init=False, repr=False)
    # False in the variant of nonstationary_variant (a field, so that the two compare and hash apart)
    _stationary_coords: bool = field(default=True, init=False, repr=False)

    params_type = GARCHParams
    # alpha, gamma, beta are optimised and sampled on stationary (stick-breaking) coordinates: a joint map
    elementwise_transforms = False
    # A missing return (NaN) moves the variance on by its conditional expectation (see update).
    supports_missing = True
    loglik_kind = _observation.LOGLIK_KIND
    latent_sites = ()
    deterministic_sites = ("vol",)
    # bayesvol.fit on a 2-D array (time x series) estimates every column at once.
    supports_batch_fit = True
    # bayesvol.fit starts BFGS from the inverse outer product of the scores (see inference/mle.py), from the
    # start value with the highest log-likelihood (the batch fit does the same).
    mle_opg_start = True
    mle_screen_starts = True

    def __post_init__(self):
        if self.vol not in ("garch", "gjr"):
            raise ValueError(f"vol must be 'garch' or 'gjr', got {self.vol!r}")
        if self.dist not in ("normal", "t", "skewt"):
            raise ValueError(f"dist must be 'normal', 't' or 'skewt', got {self.dist!r}")
        if self.mean not in ("constant", "zero"):
            raise ValueError(f"mean must be 'constant' or 'zero', got {self.mean!r}")
        _observation.check_variance_start(self, ("backcast", "sample", "unconditional"))
        _observation.store_priors(self, default_priors())
        object.__setattr__(self, "_joint_transform", self._supports_allow_joint_transform())

    # --- names and priors --------------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """Free parameters in ``arch``'s order."""
        names = (("mu",) if self.mean == "constant" else ()) + ("omega", "alpha")
        names += (("gamma",) if self.vol == "gjr" else ()) + ("beta",)
        names += {"normal": (), "t": ("nu",), "skewt": ("nu", "skew")}[self.dist]
        return names

    def prior_distributions(self) -> GARCHParams:
        """The prior of each parameter (``None`` for unused ones)."""
        return GARCHParams(**{name: self._merged[name] for name in self.param_names})

    def describe(self) -> str:
        """One line naming the model, for titles and attrs."""
        vol = {"garch": "GARCH(1,1)", "gjr": "GJR-GARCH(1,1,1)"}[self.vol]
        law = {"normal": "normal", "t": "Student-t", "skewt": "skewed-t"}[self.dist]
        return f"{vol}, {self.mean} mean, {law} innovations"

    # --- the innovation law and its moments ---------------------------------------------------------
    def innovation(self, params):
        """Law of the standardised innovation $z_t$ (mean 0, variance 1), a NumPyro distribution."""
        if self.dist == "normal":
            return ndist.Normal(0.0, 1.0)
        if self.dist == "t":
            return StandardizedStudentT(params.nu)
        return SkewedStudentT(params.nu, params.skew)

    def negative_second_moment(self, params):
        r"""$E[z^2 1\{z<0\}]$ of the innovation law: ½ for normal and t, closed form for skewed t."""
        if self.dist in ("normal", "t"):
            return jnp.asarray(0.5)  # symmetric laws
        return second_moment_below_zero(self.innovation(params))

    def _mu(self, params):
        return params.mu if self.mean == "constant" else jnp.asarray(0.0)

    def _gamma(self, params):
        return params.gamma if self.vol == "gjr" else jnp.asarray(0.0)

    def _persistence(self, params):
        if self.vol == "garch":
            return params.alpha + params.beta
        return params.alpha + params.beta + params.gamma * self.negative_second_moment(params)

    def persistence(self, params):
        r"""Persistence $\kappa = \alpha + \beta + \gamma E[z^2 1\{z<0\}]$ of the variance.

        $E[\sigma^2_{t+1} \mid \mathcal F_{t-1}] - \bar\sigma^2 = \kappa(\sigma^2_t - \bar\sigma^2)$.
        """
        return self._persistence(_base.as_params(self, params, batched=True))

    def unconditional_variance(self, params):
        r"""$\bar\sigma^2 = \omega / (1 - \kappa)$; ``inf`` where $\kappa \ge 1$."""
        params = _base.as_params(self, params, batched=True)
        kappa = self._persistence(params)
        return jnp.where(kappa < 1.0, params.omega / jnp.where(kappa < 1.0, 1.0 - kappa, 1.0), jnp.inf)

    def half_life(self, params):
        r"""Periods for a variance shock to halve in expectation, $\log ½ / \log\kappa$."""
        kappa = self.persistence(params)
        return jnp.where(kappa < 1.0, jnp.log(0.5) / jnp.log(jnp.where(kappa < 1.0, kappa, 0.5)), jnp.inf)

    # --- parameter space ---------------------------------------------------------------------------
    def is_stationary(self, params):
        """True where the persistence is below one (covariance stationarity)."""
        # Only the value matters for the wall: constant inputs keep E[z^2 1(z<0)] (whose derivative in nu is
        # first-order only) out of the derivatives of the likelihood.
        return self._persistence(jax.tree_util.tree_map(jax.lax.stop_gradient, params)) < 1.0

    def in_parameter_space(self, params):
        """False where ``alpha + gamma < 0`` (the variance could turn negative); the likelihood is defined at
        any persistence, except with ``variance_start="unconditional"``, which needs it below one."""
        ok = jnp.asarray(True)
        if self.variance_start == "unconditional":
            ok = self.is_stationary(params)
        if self.vol == "gjr":
            ok = ok & (params.alpha + params.gamma >= 0.0)
        return ok

    def check_parameters(self, params) -> None:
        """Raise ``ValueError`` if concrete parameters leave the parameter space, and warn
        ([`StationarityWarning`][bayesvol.StationarityWarning]) at a persistence of one or more (no-op under
        tracing)."""
        if not _observation.is_concrete(params):
            return
        if self.vol == "gjr" and float(params.alpha + params.gamma) < 0.0:
            raise ValueError(f"alpha + gamma = {float(params.alpha + params.gamma):.6g} < 0: the conditional "
                             f"variance of {self.describe()} could turn negative")
        kappa = float(self._persistence(params))
        if kappa < 1.0:
            return
        message = (f"persistence alpha + beta + gamma*E[z^2 1(z<0)] = {kappa:.6g} >= 1: {self.describe()} is not "
                   "covariance-stationary at these parameters")
        if self.variance_start == "unconditional":
            raise ValueError(f"{message}, and variance_start='unconditional' needs the unconditional variance")
        warnings.warn(f"{message}; the likelihood is evaluated, but the unconditional variance and long-horizon "
                      "forecasts do not exist", StationarityWarning, stacklevel=3)

    def _require_stationary(self, params) -> None:
        kappa = float(self._persistence(params))
        if not kappa < 1.0:
            raise ValueError(f"persistence alpha + beta + gamma*E[z^2 1(z<0)] = {kappa:.6g} >= 1: {self.describe()} "
                             "has no unconditional variance to start a simulation from")

    def nonstationary_variant(self) -> GARCH:
        """This model with ``(alpha, [gamma,] beta)`` each on its prior's support for maximum likelihood
        (``fit(..., stationary=False)``): the persistence is free, ``alpha + gamma >= 0`` still holds."""
        variant = copy.copy(self)
        object.__setattr__(variant, "_stationary_coords", False)
        object.__setattr__(variant, "_joint_transform", False)
        return variant

    # --- units of the data ---------------------------------------------------------------------------
    def rescale_params(self, params, scale):
        r"""Parameters for returns ``scale * y``: $\mu \to s\mu$, $\omega \to s^2\omega$, the rest
        unchanged ($\sigma^2_t \to s^2\sigma^2_t$). ``None`` with a numeric ``variance_start`` (a pre-sample
        variance in the user's units) or priors whose supports are not free of units."""
        unit_names = ("omega",) + (("mu",) if self.mean == "constant" else ())
        if isinstance(self.variance_start, float) or not _base.scale_free_supports(self, multiplied=unit_names):
            return None
        values = params._asdict()
        values["omega"] = params.omega * scale**2
        if self.mean == "constant":
            values["mu"] = params.mu * scale
        return GARCHParams(**values)

    # --- the stationarity transform for maximum likelihood -------------------------------------------
    def _supports_allow_joint_transform(self) -> bool:
        """True when alpha and beta live on (0, 1) and gamma on the real line (the default priors' supports)."""
        priors = self.prior_distributions()

        def holds(support, inside, outside):
            return all(bool(support(jnp.asarray(v))) for v in inside) and not any(
                bool(support(jnp.asarray(v))) for v in outside)

        unit = ((0.001, 0.5, 0.999), (-0.1, 1.1))
        ok = holds(priors.alpha.support, *unit) and holds(priors.beta.support, *unit)
        if self.vol == "gjr":
            ok = ok and holds(priors.gamma.support, (-50.0, 0.0, 50.0), ())
        return ok

    def _response_weights(self, params, lower):
        """Shares of the persistence: ``(alpha, beta)``, or ``((1-m) alpha, m (alpha+gamma), beta)`` for GJR."""
        if self.vol == "garch":
            return [params.alpha, params.beta]
        return [(1.0 - lower) * params.alpha, lower * (params.alpha + params.gamma), params.beta]

    def bounded_free_names(self) -> tuple[str, ...]:
        """Parameters whose unconstrained coordinate for maximum likelihood maps onto a bounded range."""
        return tuple(n for n in self.param_names if n != "mu")

    def to_unconstrained(self, params) -> dict:
        r"""Unconstrained coordinates used by [`bayesvol.fit`][bayesvol.fit].

        Each parameter goes through the bijection of its prior's support, except that (with the default
        supports) $(\alpha, \gamma, \beta)$ share one stick-breaking map onto
        $\{\alpha > 0,\ \alpha + \gamma > 0,\ \beta > 0,\ \kappa < 1\}$: the persistence
        $\kappa = (1-m)\alpha + m(\alpha+\gamma) + \beta$, $m = E[z^2 1\{z<0\}]$, is split into
        these three non-negative shares plus the slack $1 - \kappa$. The optimiser then moves smoothly
        up to the stationarity edge instead of meeting a wall of $-\infty$.
        """
        priors = self.prior_distributions()
        free = {n: biject_to(getattr(priors, n).support).inv(jnp.asarray(getattr(params, n)))
                for n in self.param_names}
        if self._joint_transform:
            weights = self._response_weights(params, self.negative_second_moment(params))
            shares = jnp.stack(weights + [1.0 - sum(weights)])
            x = StickBreakingTransform().inv(shares)
            for i, name in enumerate(("alpha", "gamma", "beta") if self.vol == "gjr" else ("alpha", "beta")):
                free[name] = x[i]
        return free

    def from_unconstrained(self, free: dict) -> GARCHParams:
        """Inverse of [`to_unconstrained`][bayesvol.models.GARCH.to_unconstrained]."""
        priors = self.prior_distributions()
        values = {n: biject_to(getattr(priors, n).support)(free[n]) for n in self.param_names}
        if self._joint_transform:
            lower = self.negative_second_moment(GARCHParams(**values))
            coords = jnp.stack([free[n] for n in self._stationary_names()])
            values.update(self._from_stationary_coords(coords, lower)[0])
        return GARCHParams(**values)

    def _stationary_names(self) -> tuple[str, ...]:
        return ("alpha", "gamma", "beta") if self.vol == "gjr" else ("alpha", "beta")

    def _from_stationary_coords(self, coords, lower):
        r"""``(alpha, [gamma,] beta)`` from the stick-breaking coordinates, and the log absolute Jacobian.

        ``coords`` (real vector) -> shares of the persistence and the slack ``1 - kappa`` on the simplex ->
        $\alpha = s_0/(1-m)$, $\gamma = s_1/m - \alpha$, $\beta = s_2$ for GJR
        ($\alpha = s_0$, $\beta = s_1$ for GARCH), with $m = E[z^2 1\{z<0\}]$. The shared map of
        maximum likelihood ([`from_unconstrained`][bayesvol.models.GARCH.from_unconstrained]) and of the NumPyro
        program.
        """
        stick = StickBreakingTransform()
        shares = stick(coords)
        log_det = stick.log_abs_det_jacobian(coords, shares)
        if self.vol == "garch":
            return {"alpha": shares[0], "beta": shares[1]}, log_det
        alpha = shares[0] / (1.0 - lower)
        # d(alpha, gamma, beta)/d(s_0, s_1, s_2) is triangular with diagonal 1/(1-m), 1/m, 1.
        return ({"alpha": alpha, "gamma": shares[1] / lower - alpha, "beta": shares[2]},
                log_det - jnp.log1p(-lower) - jnp.log(lower))

    def _sample_stationary_params(self) -> GARCHParams:
        r"""Prior sites for NUTS/SVI with ``(alpha, [gamma,] beta)`` on the stick-breaking coordinates.

        The target is unchanged (the priors restricted to the stationary region), but the sampler moves on
        the real line up to the edge $\kappa \to 1$, where the density goes to zero smoothly through the
        Jacobian, instead of meeting a wall of $-\infty$ (a divergence each time a trajectory hits it).
        """
        priors = self.prior_distributions()
        joint = self._stationary_names()
        values = {n: numpyro.sample(n, getattr(priors, n)) for n in self.param_names if n not in joint}
        coords = numpyro.sample(STATIONARY_SITE, ndist.ImproperUniform(ndist.constraints.real_vector, (),
                                                                       (len(joint),)))
        lower = self.negative_second_moment(GARCHParams(**values))
        shared, log_det = self._from_stationary_coords(coords, lower)
        log_prior = log_det
        for name in joint:
            values[name] = numpyro.deterministic(name, shared[name])
            prior = getattr(priors, name)
            # alpha = s_0/(1-m) can exceed a prior's upper bound of one under GJR: zero prior density there.
            inside = prior.support(values[name])
            safe = jnp.where(inside, values[name], prior.support.feasible_like(values[name]))
            log_prior = log_prior + jnp.where(inside, prior.log_prob(safe), -jnp.inf)
        numpyro.factor(STATIONARY_SITE + "_prior", log_prior)
        return GARCHParams(**values)

    @property
    def hidden_sites(self) -> tuple[str, ...]:
        """Sample sites that are not parameters (left out of the posterior group)."""
        return (STATIONARY_SITE,) if self._joint_transform else ()

    @property
    def dense_mass_sites(self) -> tuple[str, ...]:
        """Sample sites of the sampler (the stick-breaking coordinates replace alpha, gamma, beta)."""
        if not self._joint_transform:
            return self.param_names
        joint = self._stationary_names()
        return tuple(n for n in self.param_names if n not in joint) + (STATIONARY_SITE,)

    # --- the observation-driven protocol -------------------------------------------------------------
    def _presample(self, params, y):
        mu = self._mu(params)
        if isinstance(self.variance_start, float):
            return jnp.asarray(self.variance_start)
        if self.variance_start == "sample":
            return _observation.observed_mean(y - mu, power=2)
        # arch's backcast uses the residuals of the mean model fitted by least squares, a data statistic.
        residuals = y - _observation.observed_mean(y) if self.mean == "constant" else y
        return backcast(residuals)

    def init_state(self, params, y):
        """$\\sigma^2_1$ (see ``variance_start``); the unconditional variance when ``y`` is None."""
        if y is None or self.variance_start == "unconditional":
            kappa = self._persistence(params)
            return params.omega / jnp.where(kappa < 1.0, 1.0 - kappa, 1.0)
        b = self._presample(params, y)
        return params.omega + (params.alpha + 0.5 * self._gamma(params) + params.beta) * b

    def affine_coefficients(self, params, y):
        r"""Slope and offset of the variance recursion, $\sigma^2_{t+1} = a_t \sigma^2_t + b_t$.

        $a_t = \beta$ and $b_t = \omega + (\alpha + \gamma 1\{\varepsilon_t < 0\})\varepsilon_t^2$
        with $\varepsilon_t = y_t - \mu$ (GJR term with the indicator). ``y`` is one observation or a
        whole series (the coefficients broadcast over it); [`update`][bayesvol.models.GARCH.update] applies them for one
        step, and on an accelerator filtering composes them for all steps at once (a parallel prefix scan, see
        `bayesvol.models._observation.filter_states`).
        """
        shock = y - self._mu(params)
        response = params.alpha
        if self.vol == "gjr":
            response = response + params.gamma * (shock < 0.0)
        offset = params.omega + response * shock**2
        return jnp.broadcast_to(params.beta, jnp.broadcast_shapes(jnp.shape(params.beta), jnp.shape(offset))), offset

    def update(self, params, variance, y_t):
        """$\\sigma^2_{t+1}$ from $\\sigma^2_t$ and $y_t$ by
[`affine_coefficients`][bayesvol.models.GARCH.affine_coefficients]."""
        slope, offset = self.affine_coefficients(params, y_t)
        return slope * variance + offset

    def update_missing(self, params, variance):
        r"""$\sigma^2_{t+1}$ when $y_t$ is missing: $\omega + \kappa\sigma^2_t$.

        The shock terms of [`affine_coefficients`][bayesvol.models.GARCH.affine_coefficients] are replaced by their
        conditional expectations given $\mathcal F_{t-1}$: $E[\varepsilon_t^2] = \sigma^2_t$ and
        $E[\varepsilon_t^2 1\{\varepsilon_t < 0\}] = \sigma^2_t E[z^2 1\{z<0\}]$ ($P(z<0)\sigma^2_t
        =
        \sigma^2_t/2$ for the symmetric laws, the closed form of
        [`negative_second_moment`][bayesvol.models.GARCH.negative_second_moment] for the skewed t), so the variance
        moves on as its one-step forecast, with persistence $\kappa$.
        """
        return params.omega + self._persistence(params) * variance

    def emission(self, params, variance):
        """Law of $y_t$ given $\\sigma^2_t$: $\\mu + \\sigma_t z_t$."""
        return _observation.LocationScale(self.innovation(params), self._mu(params), variance)

    def state_from_variance(self, params, variance):
        """The state is the conditional variance itself."""
        return variance

    def variance(self, state):
        """$\\sigma^2_t$ from the state (the state itself)."""
        return state

    def expected_variance(self, params, state, horizon: int):
        r"""$E[\sigma^2_{T+h} \mid \mathcal F_T]$, $h = 1..H$, from the state for $T+1$.

        $\bar\sigma^2 + \kappa^{h-1}(\sigma^2_{T+1} - \bar\sigma^2)$, because
        $E[(\alpha + \gamma 1\{z<0\}) z^2] = \alpha + \gamma E[z^2 1\{z<0\}]$.
        """
        kappa = self._persistence(params)
        long_run = params.omega / (1.0 - kappa)
        return long_run + kappa ** jnp.arange(horizon) * (state - long_run)

    # --- consumers: simulation, NumPyro, posterior helpers -------------------------------------------
    def simulate(self, params, num_timesteps: int, key) -> GARCHSimulation:
        """Simulate ``num_timesteps`` returns starting from the unconditional variance.

        ``key`` is an integer seed, ``None`` (a fresh random seed) or a JAX random key. The path runs
        [`update`][bayesvol.models.GARCH.update] on draws from [`emission`][bayesvol.models.GARCH.emission], the
        recursion the likelihood filters with.
        """
        num_timesteps, key = _base.simulation_inputs(num_timesteps, key)
        params = _base.as_params(self, params)
        self._require_stationary(params)
        self.check_parameters(params)
        y, variance = _observation.simulate_path(self, params, num_timesteps, key)
        return GARCHSimulation(y=np.asarray(y), variance=np.asarray(variance))

    def filter(self, params, y):
        """Conditional variances $\\sigma^2_1, \\dots, \\sigma^2_{T+1}$ given returns ``y``."""
        params = _base.as_params(self, params)
        self.check_parameters(params)
        states, last = _observation.filter_states(self, params, jnp.asarray(y, dtype=jnp.float64))
        return np.append(np.asarray(states), float(last))

    def program(self, y):
        """NumPyro program: priors, the variance recursion, deterministic ``vol``, factor ``y``.

        The factor ``y`` holds the exact one-step-ahead log densities (one per time step).
        """
        if self._joint_transform:
            params = self._sample_stationary_params()
        else:
            params = _base.sample_params(self)
            # The prior is restricted to the stationary region whatever coordinates the sampler moves on.
            numpyro.factor("stationarity", jnp.where(self.is_stationary(params), 0.0, -jnp.inf))
        states, _ = _observation.filter_states(self, params, y)
        numpyro.deterministic("vol", jnp.sqrt(states))
        numpyro.factor("y", _observation.loglik_from_states(self, params, states, y))

    def pointwise_loglik_draws(self, draws: dict, y):
        """Exact ``log p(y_t | y_{1:t-1}, theta)`` for every posterior draw, dims ``(chain, draw, time)``."""
        return _observation.loglik_draws(self, draws, y)

    def predictive_draws(self, draws: dict, key):
        """One replicated series per draw from the one-step-ahead laws along the draw's ``vol``."""
        return _observation.predictive_draws(self, draws, key)

    def start_values(self, y) -> list[dict]:
        """Start values for maximum likelihood: typical (alpha, gamma, beta), omega from the sample variance.

        [`bayesvol.fit`][bayesvol.fit] screens them by their log-likelihood and optimises from the best one.
        """
        y = _observation.observed_values(y)
        mu0 = float(np.mean(y)) if self.mean == "constant" else 0.0
        variance = float(np.mean((y - mu0) ** 2))
        # A typical daily fit and a more persistent one (arch instead screens a grid and keeps one).
        shapes = ((0.06, 0.06, 0.88), (0.03, 0.03, 0.95))
        starts = []
        for alpha, gamma, beta in shapes:
            kappa = alpha + beta + (0.5 * gamma if self.vol == "gjr" else 0.0)
            start = {"omega": variance * (1.0 - kappa), "alpha": alpha, "beta": beta}
            if self.mean == "constant":
                start["mu"] = mu0
            if self.vol == "gjr":
                start["gamma"] = gamma
            if self.dist in ("t", "skewt"):
                start["nu"] = 8.0
            if self.dist == "skewt":
                start["skew"] = 0.0
            starts.append(start)
        return starts


def exact_loglik(model: GARCH, params: GARCHParams, y, **options):
    """Exact pointwise log-likelihood ``log p(y_t | y_{1:t-1}, theta)`` of a [`GARCH`][bayesvol.models.GARCH] model
(differentiable)."""
    if options:
        raise TypeError(f"the exact GARCH log-likelihood takes no options, got {sorted(options)}")
    model.check_parameters(params)
    return _observation.pointwise_loglik(model, params, y)
