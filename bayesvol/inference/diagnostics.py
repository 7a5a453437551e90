"""Convergence checks that turn R-hat, ESS and divergences (from arviz-stats) into warnings a user can act on."""

from __future__ import annotations

import warnings

import numpy as np

from bayesvol._validation import ConvergenceWarning

__all__ = ["ConvergenceWarning", "check_convergence"]


RHAT_THRESHOLD = 1.01
ESS_PER_CHAIN = 100


def check_convergence(idata, var_names, *, target_accept_prob=None, warn=True) -> list[str]:
    """Messages about divergences, R-hat above 1.01 and bulk ESS below 100 per chain.

    Parameters
    ----------
    idata : xarray.DataTree
        Output of [`bayesvol.sample`][bayesvol.sample] (ArviZ 1.x layout: ``posterior`` and ``sample_stats`` groups).
    var_names : sequence of str
        Variables to check (parameters and the latent path ``h``).
    target_accept_prob : float, optional
        Mentioned in the advice on divergences.
    warn : bool
        Also emit each message as a [`ConvergenceWarning`][bayesvol.ConvergenceWarning].
    """
    import arviz_stats  # here, not at module level: it takes seconds to import

    messages = []
    posterior = idata.posterior
    num_chains, num_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    if "sample_stats" in idata.children and "diverging" in idata.sample_stats:
        num_div = int(idata.sample_stats["diverging"].sum())
        if num_div:
            advice = "raise target_accept_prob" + (f" (now {target_accept_prob})" if target_accept_prob else "")
            messages.append(
                f"{num_div} of {num_chains * num_draws} draws after warm-up ended in a divergence: the sampler "
                f"could not follow the posterior's curvature there, so the draws may be biased; {advice}, "
                "or use tighter priors"
            )
    var_names = [v for v in var_names if v in posterior]
    if num_chains > 1:
        rhat = arviz_stats.rhat(idata, var_names=var_names)
        for name in var_names:
            worst = float(np.nanmax(rhat[name].values))
            if worst > RHAT_THRESHOLD:
                messages.append(
                    f"R-hat of {name} is {worst:.3f} (above {RHAT_THRESHOLD}): the chains have not mixed into "
                    "the same distribution; run more warm-up and samples before trusting the results"
                )
    ess = arviz_stats.ess(idata, var_names=var_names, method="bulk")
    floor = ESS_PER_CHAIN * num_chains
    for name in var_names:
        worst = float(np.nanmin(ess[name].values))
        if worst < floor:
            messages.append(
                f"the effective sample size of {name} is only {worst:.0f} (below {floor}, i.e. {ESS_PER_CHAIN} "
                "per chain): posterior means and intervals are noisy; draw more samples"
            )
    if warn:
        for message in messages:
            warnings.warn(message, ConvergenceWarning, stacklevel=3)
    return messages
