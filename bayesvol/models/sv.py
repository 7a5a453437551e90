"""Univariate stochastic volatility (SV) with normal or Student-t errors and optional leverage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

import bayesvol.models._base as _base
from bayesvol.distributions.priors import ScaledBeta, ShiftedExponential
from bayesvol.models._protocol import LatentStateModelBase

__all__ = ["SV", "SVParams"]


class SVParams(NamedTuple):
    """Parameters of [`SV`][bayesvol.models.SV]; ``nu`` and ``rho`` are ``None`` when the model does not use them."""

    mu: jax.Array
    phi: jax.Array
    sigma: jax.Array
    nu: jax.Array | None = None
    rho: jax.Array | None = None


def default_priors() -> dict:
    """Default priors, in the spirit of the R package stochvol.

    ``mu ~ N(0, 10^2)``, ``(phi + 1)/2 ~ Beta(5, 1.5)``, ``sigma ~ HalfNormal(1)`` (stochvol's
    ``sigma^2 ~ Gamma(1/2, 1/2)``), ``nu - 2 ~ Exponential(0.1)``, ``(rho + 1)/2 ~ Beta(4, 4)``.
    """
    return {
        "mu": dist.Normal(0.0, 10.0),
        "phi": ScaledBeta(5.0, 1.5, -1.0, 1.0),
        "sigma": dist.HalfNormal(1.0),
        "nu": ShiftedExponential(0.1, 2.0),
        "rho": ScaledBeta(4.0, 4.0, -1.0, 1.0),
    }


@dataclass(frozen=True)
class SV(LatentStateModelBase):
    r"""Univariate stochastic volatility model.

    Parameters
    ----------
    errors : {"normal", "t"}
        Law of the standardised error $\varepsilon_t$. ``"t"`` is a Student-t scaled to unit
        variance, so $e^{h_t}$ is the conditional variance under both laws.
    leverage : bool
        Let the return shock and the next log-variance shock correlate, $\rho = \mathrm{corr}
        (\varepsilon_t, \eta_{t+1})$. Supported with normal errors.
    priors : mapping, optional
        Parameter name -> NumPyro distribution, overriding [`default_priors`][bayesvol.models.sv.default_priors]. The
        support of each prior is the constraint on that parameter, for NUTS and for maximum likelihood alike.
    parametrization : {"noncentered", "centered"}
        How the NumPyro program writes the latent path. Non-centred (the default) samples standard-normal
        innovations and builds ``h`` with a ``lax.scan``; centred samples ``h`` directly.

    Notes
    -----

    $$
    y_t &= e^{h_t/2} \varepsilon_t, \\
    h_t &= \mu + \phi (h_{t-1} - \mu) + \sigma \eta_t, \qquad \eta_t \sim N(0, 1), \\
    h_1 &\sim N\!\left(\mu, \sigma^2 / (1 - \phi^2)\right).
    $$

    With leverage, $(\varepsilon_t, \eta_{t+1})$ are bivariate normal with correlation
    $\rho$, so $h_{t+1} \mid h_t, y_t \sim N(\mu + \phi(h_t - \mu) + \sigma\rho\varepsilon_t,
    \sigma^2(1 - \rho^2))$ with $\varepsilon_t = y_t e^{-h_t/2}$.

    Unlike stochvol, whose t errors have variance $\nu/(\nu-2)$, the t errors here have unit
    variance; stochvol's $h$ equals this model's $h - \log(\nu/(\nu-2))$.

    Examples
    --------
    >>> import bayesvol
    >>> model = bayesvol.models.SV()
    >>> sim = bayesvol.simulate(model, {"mu": -0.5, "phi": 0.95, "sigma": 0.2}, num_timesteps=500, seed=1)
    >>> sim.y.shape
    (500,)
    """

    errors: str = "normal"
    leverage: bool = False
    priors: Mapping | None = field(default=None, compare=False, hash=False, repr=False)
    parametrization: str = "noncentered"
    _prior_items: tuple = field(default=(), init=False, repr=False)

    params_type = SVParams
    # A missing return (NaN) skips the emission at that step; the state equation carries h on.
    supports_missing = True

    def __post_init__(self):
        if self.errors not in ("normal", "t"):
            raise ValueError(f"errors must be 'normal' or 't', got {self.errors!r}")
        if not isinstance(self.leverage, bool):
            raise TypeError(f"leverage must be True or False, got {self.leverage!r}")
        if self.leverage and self.errors == "t":
            raise NotImplementedError("leverage=True is available with errors='normal' only")
        if self.parametrization not in ("noncentered", "centered"):
            raise ValueError(f"parametrization must be 'noncentered' or 'centered', got {self.parametrization!r}")
        merged = _base.merge_priors(default_priors(), self.priors, self.param_names)
        # Store the user's priors as a tuple so models hash and compare by value (static jit argument).
        object.__setattr__(self, "_prior_items", tuple((k, merged[k]) for k in self.param_names
                                                        if self.priors and k in self.priors))
        object.__setattr__(self, "priors", None)
        object.__setattr__(self, "_merged", merged)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the free parameters, in a fixed order."""
        return ("mu", "phi", "sigma") + (("nu",) if self.errors == "t" else ()) + (
            ("rho",) if self.leverage else ()
        )

    def prior_distributions(self) -> SVParams:
        """The prior of each parameter (``None`` for unused ones)."""
        return SVParams(**{name: self._merged[name] for name in self.param_names})

    # --- units of the data ---------------------------------------------------------------------
    def rescale_params(self, params, scale):
        r"""Parameters for returns ``scale * y``: $\mu \to \mu + 2\ln s$ ($h_t \to h_t + 2\ln s$),
        the rest unchanged; ``None`` when the prior of ``mu`` is not free of units."""
        if not _base.scale_free_supports(self, shifted=("mu",)):
            return None
        return params._replace(mu=params.mu + 2.0 * jnp.log(scale))

    # --- the latent-state protocol -------------------------------------------------------------
    def initial(self, params: SVParams) -> dist.Normal:
        """Stationary law of ``h_1``."""
        return dist.Normal(params.mu, params.sigma / jnp.sqrt(1.0 - params.phi**2))

    def transition(self, params: SVParams, h_prev, y_prev=None) -> dist.Normal:
        r"""Law of ``h_t`` given ``h_{t-1}`` (and ``y_{t-1}`` under leverage).

        Under leverage a missing ``y_{t-1}`` (NaN) leaves the shock $\varepsilon_{t-1}$ unknown, and
        ``h_t`` follows its law given ``h_{t-1}`` alone, $N(\mu + \phi(h_{t-1} - \mu), \sigma^2)$.
        """
        loc = params.mu + params.phi * (h_prev - params.mu)
        if not self.leverage:
            return dist.Normal(loc, params.sigma * jnp.ones_like(loc))
        observed = ~jnp.isnan(y_prev)
        eps_prev = jnp.where(observed, y_prev, 0.0) * jnp.exp(-0.5 * h_prev)
        return dist.Normal(loc + params.sigma * params.rho * eps_prev,
                           params.sigma * jnp.where(observed, jnp.sqrt(1.0 - params.rho**2), 1.0)
                           * jnp.ones_like(loc))

    def emission(self, params: SVParams, h):
        """Law of ``y_t`` given ``h_t``."""
        scale = jnp.exp(0.5 * h)
        if self.errors == "normal":
            return dist.Normal(0.0, scale)
        nu = params.nu
        return dist.StudentT(nu, 0.0, scale * jnp.sqrt((nu - 2.0) / nu))

    # --- the NumPyro program ---------------------------------------------------------------------
    def program(self, y):
        """NumPyro program: priors, latent log-variance path ``h``, observations ``y``.

        Sites: one per parameter, ``h_std`` (non-centred) or ``h`` (centred), deterministic ``h`` and
        ``vol = exp(h/2)``, observed ``y`` (its log density is conditional on ``h``). A missing return (NaN)
        is masked out of ``y``: the path ``h`` runs through the gap, driven by the state equation alone.
        """
        params = _base.sample_params(self)
        num_timesteps = y.shape[0]
        if self.parametrization == "noncentered":
            z = numpyro.sample("h_std", dist.Normal(0.0, 1.0).expand([num_timesteps]).to_event(1))
            h = numpyro.deterministic("h", _base.noncentred_path(self, params, z, y))
        else:
            h = numpyro.sample("h", dist.ImproperUniform(constraints.real, (), (num_timesteps,)))
            numpyro.factor("h_prior", self.initial(params).log_prob(h[0])
                           + self.transition(params, h[:-1], y[:-1]).log_prob(h[1:]).sum())
        numpyro.deterministic("vol", jnp.exp(0.5 * h))
        with numpyro.plate("time", num_timesteps):
            if _base.is_complete(y):
                numpyro.sample("y", self.emission(params, h), obs=y)
            else:
                missing = jnp.isnan(y)
                # The masked site's log density is zero at missing steps; its value there is a stand-in.
                numpyro.sample("y", self.emission(params, h).mask(~missing), obs=jnp.where(missing, 0.0, y))

    @property
    def latent_sites(self) -> tuple[str, ...]:
        """Sample sites of the program that are not parameters."""
        return ("h_std",) if self.parametrization == "noncentered" else ("h",)

    def check_parameter_values(self, params) -> None:
        r"""Refuse $|\phi| \ge 1$, the edges of the closed support of the prior of ``phi``.

        $h_1$ is drawn from the stationary law $N(\mu, \sigma^2/(1-\phi^2))$, which exists only
        for $|\phi| < 1$; at $\phi = \pm 1$ every likelihood method would be NaN or -inf and the
        simulator infinite.
        """
        phi = np.asarray(params.phi, dtype=np.float64)
        if not np.all(np.abs(phi) < 1.0):
            worst = float(phi.ravel()[np.argmax(np.abs(phi).ravel())])
            raise ValueError(f"phi = {worst:.6g} is not in the open interval (-1, 1) that {self.describe()} needs: "
                             "h_1 starts from the stationary law N(mu, sigma^2 / (1 - phi^2)), which does not exist "
                             "at |phi| = 1 (a random walk); take |phi| < 1, e.g. phi = 0.999 for a near unit root")

    def start_values(self, y) -> list[dict]:
        """Start values for maximum likelihood, from the sample variance of ``y``."""
        y = np.asarray(y, dtype=np.float64)
        mu0 = float(np.log(np.var(y[~np.isnan(y)])))
        starts = []
        for phi0, sigma0 in ((0.95, 0.2), (0.8, 0.5), (0.99, 0.1)):
            start = {"mu": mu0, "phi": phi0, "sigma": sigma0}
            if self.errors == "t":
                start["nu"] = 10.0
            if self.leverage:
                start["rho"] = -0.2
            starts.append(start)
        return starts

    def describe(self) -> str:
        """One line naming the model, for titles and attrs."""
        extras = [f"{self.errors} errors"] + (["leverage"] if self.leverage else [])
        return f"SV ({', '.join(extras)})"
