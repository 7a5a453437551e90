"""Stochastic variational inference: a fast, approximate alternative to NUTS."""

from __future__ import annotations

import jax
import numpy as np
from numpyro.infer import SVI, Predictive, Trace_ELBO, autoguide, init_to_median
from numpyro.optim import ClippedAdam

import bayesvol.inference._idata as _idata

GUIDES = {
    "normal": autoguide.AutoNormal,
    "lowrank": autoguide.AutoLowRankMultivariateNormal,
    "mvn": autoguide.AutoMultivariateNormal,
}


def sample_svi(model, y, index, *, num_samples, seed, posterior_predictive, progress_bar, num_steps, guide,
               learning_rate):
    """Fit an automatic guide by maximising the ELBO, then draw ``num_samples`` from it."""
    if guide not in GUIDES:
        raise ValueError(f"guide must be one of {', '.join(GUIDES)}, got {guide!r}")
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    fitted_guide = GUIDES[guide](model.program, init_loc_fn=init_to_median(num_samples=15))
    optimizer = ClippedAdam(step_size=learning_rate, clip_norm=10.0)
    svi = SVI(model.program, fitted_guide, optimizer, loss=Trace_ELBO())
    key_fit, key_draw, key_ppc = jax.random.split(jax.random.PRNGKey(seed), 3)
    result = svi.run(key_fit, num_steps, y, progress_bar=progress_bar)
    sites = list(model.param_names) + list(model.latent_sites) + list(model.deterministic_sites)
    predictive = Predictive(model.program, guide=fitted_guide, params=result.params, num_samples=num_samples,
                            return_sites=sites)
    draws = {k: np.asarray(v)[None] for k, v in predictive(key_draw, y).items()}
    posterior = {k: v for k, v in draws.items() if k not in model.hidden_sites}
    loglik = np.asarray(model.pointwise_loglik_draws(draws, y))
    ppc = np.asarray(model.predictive_draws(draws, key_ppc)) if posterior_predictive else None
    losses = np.asarray(result.losses)
    final = float(np.mean(losses[-max(1, num_steps // 20):]))
    return _idata.build(model, np.asarray(y), index, posterior, log_likelihood=loglik,
                        posterior_predictive=ppc,
                        attrs={"inference": f"svi ({guide} guide, {num_steps} Adam steps)",
                               "final_elbo_loss": final})
