"""Likelihood methods of [`bayesvol.models.SV`][bayesvol.models.SV] for [`bayesvol.fit`][bayesvol.fit] and
[`bayesvol.log_likelihood`][bayesvol.log_likelihood]: ``"pf"``, ``"eis"``, ``"bellman"`` and ``"qml"`` (the registry in
`bayesvol.inference` points at these functions and their diagnostics).

Each returns the pointwise log-likelihood (one value per time step) as a pure JAX function of the
parameters; simulated methods use a fixed ``seed`` (common random numbers), so the optimiser sees one
deterministic surface, and report their Monte Carlo error at the estimate in ``MLEResult.diagnostics``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayesvol.filters.bellman import bellman_filter
from bayesvol.filters.eis import efficient_importance_sampling
from bayesvol.filters.kalman import sv_qml_filter
from bayesvol.filters.particle import particle_filter

__all__ = ["eis_diagnostics", "pf_diagnostics", "qml_diagnostics", "sv_bellman", "sv_eis", "sv_particle_filter",
           "sv_qml"]

# Independent replications used to measure the Monte Carlo spread of a simulated log-likelihood.
MC_REPLICATIONS = 20


def _spread(values) -> dict:
    values = np.asarray(values)
    return {"loglik_mc_sd": float(np.std(values, ddof=1)), "loglik_mc_replications": int(values.size)}


def pf_diagnostics(model, params, y, *, num_particles=1000, seed=0, proposal="bootstrap", resampling="smooth",
                   ess_threshold=1.0):
    """Monte Carlo spread of the particle-filter log-likelihood over independent seeds (``loglik_mc_sd``)."""

    def one(key):
        return particle_filter(model, params, y, key, num_particles, proposal=proposal, resampling=resampling,
                               ess_threshold=ess_threshold).log_likelihood

    keys = jax.random.split(jax.random.PRNGKey(seed + 1), MC_REPLICATIONS)
    out = _spread(jax.lax.map(one, keys, batch_size=4))
    out["loglik_note"] = ("the particle-filter log-likelihood is a Monte Carlo estimate; estimates that differ by "
                          "less than about loglik_mc_sd are not distinguishable")
    return out


def sv_particle_filter(model, params, y, *, num_particles: int = 1000, seed: int = 0, proposal: str = "bootstrap",
                       resampling: str = "smooth", ess_threshold: float = 1.0):
    """Particle-filter estimates of ``log p(y_t | y_{1:t-1})`` (see
[`bayesvol.filters.particle_filter`][bayesvol.filters.particle_filter]).

    The defaults make the estimate continuous in the parameters for a fixed ``seed``: the bootstrap filter
    with the continuous resampling of Malik & Pitt (2011) at every step, so [`bayesvol.fit`][bayesvol.fit] can
    maximise it with gradients (BFGS). ``resampling="systematic"`` gives the unbiased estimator but a
    discontinuous surface; use it for evaluation, not fitting.
    """
    return particle_filter(model, params, y, seed, num_particles, proposal=proposal, resampling=resampling,
                           ess_threshold=ess_threshold).pointwise_log_likelihood


def eis_diagnostics(model, params, y, *, num_draws=64, seed=0, num_iterations=8, antithetic=True,
                    tolerance=None):
    """Monte Carlo spread of the EIS log-likelihood over independent seeds, and the last kernel change of the
    run at ``seed`` (``eis_max_kernel_change``)."""

    def one(key):
        out = efficient_importance_sampling(model, params, y, key, num_draws, num_iterations=num_iterations,
                                            antithetic=antithetic, tolerance=tolerance)
        return out.log_likelihood, out.max_change

    # One compiled program: the run at ``seed`` (its kernel's last change) and the replications (the spread).
    keys = jnp.concatenate([jax.random.PRNGKey(seed)[None], jax.random.split(jax.random.PRNGKey(seed + 1),
                                                                            MC_REPLICATIONS)])
    values, changes = jax.lax.map(one, keys)
    out = _spread(values[1:])
    out["eis_max_kernel_change"] = float(changes[0])
    return out


def sv_eis(model, params, y, *, num_draws: int = 64, seed: int = 0, num_iterations: int = 8,
           antithetic: bool = True, tolerance: float | None = None):
    """EIS log-likelihood terms (see
[`bayesvol.filters.efficient_importance_sampling`][bayesvol.filters.efficient_importance_sampling]).

    By default a fixed number of fixed-point iterations, all differentiated (``tolerance=None``), so the
    estimate is a smooth function of the parameters with exact gradients for [`bayesvol.fit`][bayesvol.fit].
    """
    return efficient_importance_sampling(model, params, y, seed, num_draws, num_iterations=num_iterations,
                                         antithetic=antithetic, tolerance=tolerance).pointwise_log_likelihood


def sv_bellman(model, params, y, *, num_newton_steps: int = 10):
    """Bellman-filter approximate log-likelihood terms (see
[`bayesvol.filters.bellman_filter`][bayesvol.filters.bellman_filter])."""
    return bellman_filter(model, params, y, num_newton_steps=num_newton_steps).pointwise_log_likelihood


def qml_diagnostics(model, params, y, *, offset=None):
    """A note that the QML value is a quasi-log-likelihood of ``log(y^2 + c)``, not a density of ``y``."""
    return {"loglik_note": "Gaussian quasi-log-likelihood of log(y^2 + c), not a density of y; compare estimates "
                           "(with robust standard errors), not log-likelihood values, with other methods"}


def sv_qml(model, params, y, *, offset=None):
    """Quasi-log-likelihood terms of ``log y_t^2`` (see
[`bayesvol.filters.sv_qml_filter`][bayesvol.filters.sv_qml_filter])."""
    return sv_qml_filter(model, params, y, offset=offset).pointwise_log_likelihood
