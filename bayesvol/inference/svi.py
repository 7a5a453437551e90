"""Stochastic variational inference: a fast, approximate alternative to NUTS."""

from __future__ import annotations

import numbers
import warnings

import jax
import numpy as np
from numpyro.infer import SVI, Predictive, Trace_ELBO, autoguide, init_to_median
from numpyro.optim import ClippedAdam

import bayesvol.inference._idata as _idata
from bayesvol._validation import ConvergenceWarning

GUIDES = {
    "normal": autoguide.AutoNormal,
    "lowrank": autoguide.AutoLowRankMultivariateNormal,
    "mvn": autoguide.AutoMultivariateNormal,
}


def check_elbo(losses, learning_rate: float, warn: bool = True) -> None:
    """Raise when the ELBO diverged (a non-finite loss at the end); warn when it is still falling.

    Convergence compares the mean loss over the last 10% of the steps with the mean over the 10% before, in
    units of the standard error of that difference: a drop of more than three standard errors (and more than
    1e-6 relative) means the optimiser had not finished.
    """
    losses = np.asarray(losses, dtype=np.float64)
    bad = ~np.isfinite(losses)
    if bad[-1]:
        first = int(np.flatnonzero(bad)[0])
        raise FloatingPointError(
            f"SVI diverged: the ELBO loss became {losses[first]} at step {first + 1} of {losses.size} (learning_rate="
            f"{learning_rate}), so the fitted guide and its draws are NaN; lower learning_rate (the "
            "default is 0.01), check that y is in sensible units (percent returns), or use method='nuts'")
    window = losses.size // 10
    if not warn or window < 5:
        return
    last, previous = losses[-window:], losses[-2 * window:-window]
    drop = float(previous.mean() - last.mean())
    noise = float(np.sqrt((last.var(ddof=1) + previous.var(ddof=1)) / window))
    if drop > 3.0 * noise and drop > 1e-6 * abs(float(last.mean())):
        warnings.warn(f"SVI has not converged: the mean ELBO loss fell by {drop:.4g} over the last {window} of "
                      f"{losses.size} steps (noise {noise:.2g}); raise num_steps (or learning_rate, now "
                      f"{learning_rate})", ConvergenceWarning, stacklevel=3)


def sample_svi(model, y, index, *, num_samples, seed, posterior_predictive, progress_bar, num_steps, guide,
               learning_rate, warn=True):
    """Fit an automatic guide by maximising the ELBO, then draw ``num_samples`` from it.

    Raises `FloatingPointError` when the optimisation diverges (a NaN or infinite ELBO at the end, or
    NaN draws) and warns ([`ConvergenceWarning`][bayesvol.ConvergenceWarning]) when the ELBO is still falling.
    """
    if guide not in GUIDES:
        raise ValueError(f"guide must be one of {', '.join(GUIDES)}, got {guide!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int | np.integer) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    if isinstance(learning_rate, bool) or not (isinstance(learning_rate, numbers.Real) and learning_rate > 0
                                               and np.isfinite(learning_rate)):
        raise ValueError(f"learning_rate must be a positive finite number, got {learning_rate!r}")
    fitted_guide = GUIDES[guide](model.program, init_loc_fn=init_to_median(num_samples=15))
    optimizer = ClippedAdam(step_size=learning_rate, clip_norm=10.0)
    svi = SVI(model.program, fitted_guide, optimizer, loss=Trace_ELBO())
    key_fit, key_draw, key_ppc = jax.random.split(jax.random.PRNGKey(seed), 3)
    result = svi.run(key_fit, int(num_steps), y, progress_bar=progress_bar)
    check_elbo(result.losses, learning_rate, warn)
    sites = list(model.param_names) + list(model.latent_sites) + list(model.deterministic_sites)
    predictive = Predictive(model.program, guide=fitted_guide, params=result.params, num_samples=num_samples,
                            return_sites=sites)
    draws = {k: np.asarray(v)[None] for k, v in predictive(key_draw, y).items()}
    broken = sorted(k for k, v in draws.items() if not np.all(np.isfinite(v)))
    if broken:
        raise FloatingPointError(f"SVI draws of {', '.join(broken)} hold NaN or inf although the ELBO is finite "
                                 f"(learning_rate={learning_rate}); lower learning_rate, raise num_steps, or use "
                                 "method='nuts'")
    posterior = {k: v for k, v in draws.items() if k not in model.hidden_sites}
    loglik = np.asarray(model.pointwise_loglik_draws(draws, y))
    ppc = np.asarray(model.predictive_draws(draws, key_ppc)) if posterior_predictive else None
    losses = np.asarray(result.losses)
    final = float(np.mean(losses[-max(1, num_steps // 20):]))
    return _idata.build(model, np.asarray(y), index, posterior, log_likelihood=loglik,
                        posterior_predictive=ppc,
                        attrs={"inference": f"svi ({guide} guide, {num_steps} Adam steps)",
                               "final_elbo_loss": final})
