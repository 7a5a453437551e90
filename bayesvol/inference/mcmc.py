"""NUTS and SVI drivers: a model and its data in, an ArviZ ``xarray.DataTree`` out."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS, init_to_median

import bayesvol._validation as _validation
import bayesvol.inference._idata as _idata
import bayesvol.inference.registry as registry
from bayesvol.inference.diagnostics import check_convergence
from bayesvol.inference.pmmh import check_latent_state_model, sample_pmmh
from bayesvol.inference.svi import sample_svi
from bayesvol.models._protocol import check_model

__all__ = ["sample"]


def _chain_method(num_chains: int) -> str:
    return "parallel" if num_chains > 1 and jax.local_device_count() >= num_chains else "sequential"


def sample(model, y, method: str = "nuts", *, num_chains: int = 4, num_warmup: int = 1000,
           num_samples: int = 1000, seed: int = 0, target_accept_prob: float = 0.95,
           max_tree_depth: int = 10, dense_mass: bool = True, posterior_predictive: bool = False,
           progress_bar: bool = True, warn: bool = True, num_steps: int = 20_000, guide: str = "lowrank",
           learning_rate: float = 0.01, num_particles: int = 1000):
    """Draw from the posterior of ``model`` given returns ``y``.

    Parameters
    ----------
    model : bayesvol model
        E.g. [`bayesvol.models.SV`][bayesvol.models.SV].
    y : array_like or pandas.Series
        Returns (percent log returns in the examples). A Series' dates become the ``time`` coordinates.
    method : {"nuts", "svi", "pmmh"}
        NUTS (NumPyro's No-U-Turn sampler), stochastic variational inference, or particle marginal
        Metropolis-Hastings for latent-state models
        ([`bayesvol.inference.pmmh.sample_pmmh`][bayesvol.inference.pmmh.sample_pmmh], which takes further tuning
        options).
    num_chains : int
        NUTS chains.
    num_warmup : int
        Warm-up (adaptation) iterations per chain.
    num_samples : int
        Kept draws per chain. With SVI, ``num_samples`` draws are taken from the fitted guide (one "chain").
    seed : int or None
        Seed of the JAX random number generator (a Python or numpy integer); ``None`` draws a fresh one.
    target_accept_prob : float
        NUTS target acceptance probability; raise it if divergences are reported.
    max_tree_depth : int
        NUTS maximum tree depth (at most ``2**max_tree_depth`` leapfrog steps per draw).
    dense_mass : bool
        Adapt a dense mass matrix over the model's parameters (a diagonal one over the latent path). On SV
        this removed the divergences near ``phi -> 1`` that a diagonal mass matrix leaves at the same cost.
    posterior_predictive : bool
        Add a ``posterior_predictive`` group with replicated returns drawn given each draw's ``h``.
    progress_bar : bool
        Show NumPyro's progress bar.
    warn : bool
        Emit a [`ConvergenceWarning`][bayesvol.ConvergenceWarning] for divergences, R-hat above
        1.01 or low effective sample size.
    num_steps : int
        SVI only: optimisation steps. An optimisation that diverges (NaN or infinite ELBO, NaN draws) raises
        `FloatingPointError` saying what to change; one whose ELBO is still falling at the end is warned
        about (with ``warn``).
    guide : str
        SVI only: the guide, ``"normal"`` (mean field), ``"lowrank"`` (low-rank multivariate normal) or
        ``"mvn"`` (full multivariate normal).
    learning_rate : float
        SVI only: the Adam step size.
    num_particles : int
        PMMH only: particles of the bootstrap filter whose likelihood estimate drives the chain.

    Returns
    -------
    xarray.DataTree
        In ArviZ 1.x's layout: groups ``posterior`` (parameters, ``h``, ``vol`` on dim ``time``),
        ``sample_stats``, ``log_likelihood`` (``y``, dims chain, draw, time, conditional on ``h``),
        ``observed_data`` and, on request, ``posterior_predictive``; every group's ``attrs`` name the model,
        the method and the kind of log-likelihood. ``idata.to_netcdf(path)`` saves it and
        ``xarray.open_datatree(path)`` reads it back.

    Examples
    --------
    >>> import bayesvol
    >>> y = bayesvol.datasets.load("gbpusd")
    >>> idata = bayesvol.sample(bayesvol.models.SV(), y, num_chains=1, num_warmup=50, num_samples=50,
    ...                         progress_bar=False, warn=False)
    >>> idata.posterior["vol"].dims
    ('chain', 'draw', 'time')
    """
    if method not in registry.SAMPLERS:
        raise ValueError(f"method must be 'nuts', 'svi' or 'pmmh', got {method!r}")
    if method == "pmmh":
        check_latent_state_model(model)  # the three laws with priors are all PMMH needs, for any such model
    else:
        check_model(model)
        registry.lookup(model, method)
    series = model.validate_data(y)
    y_values = jnp.asarray(series.values)
    for name, value in (("num_chains", num_chains), ("num_samples", num_samples)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    num_chains, num_samples = int(num_chains), int(num_samples)
    num_warmup = _validation.as_count(num_warmup, "num_warmup", minimum=0)
    seed = _validation.as_seed(seed)
    if method == "nuts":
        return _sample_nuts(model, y_values, series.index, num_chains, num_warmup, num_samples, seed,
                            target_accept_prob, max_tree_depth, dense_mass, posterior_predictive, progress_bar,
                            warn)
    if method == "svi":
        return sample_svi(model, y_values, series.index, num_samples=num_samples, seed=seed,
                          posterior_predictive=posterior_predictive, progress_bar=progress_bar,
                          num_steps=num_steps, guide=guide, learning_rate=learning_rate, warn=warn)
    return sample_pmmh(model, y_values, series.index, num_particles=num_particles, num_samples=num_samples,
                       num_warmup=num_warmup, num_chains=num_chains, seed=seed, warn=warn)


def _sample_nuts(model, y, index, num_chains, num_warmup, num_samples, seed, target_accept_prob,
                 max_tree_depth, dense_mass, posterior_predictive, progress_bar, warn):
    # A family's registry row may supply NUTS settings (a start from a filter, an initial mass matrix).
    options = {"init_strategy": init_to_median(num_samples=15)}
    options.update(registry.nuts_setup(model, y, dense_mass))
    kernel = NUTS(model.program, target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                  dense_mass=[tuple(model.dense_mass_sites)] if dense_mass else False, **options)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method=_chain_method(num_chains), progress_bar=progress_bar)
    key_run, key_ppc = jax.random.split(jax.random.PRNGKey(seed))
    mcmc.run(key_run, y, extra_fields=("diverging", "energy", "num_steps", "accept_prob", "adapt_state.step_size"))
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    num_steps = np.asarray(extra["num_steps"])
    sample_stats = {
        "diverging": np.asarray(extra["diverging"]),
        "energy": np.asarray(extra["energy"]),
        "n_steps": num_steps,
        "tree_depth": np.ceil(np.log2(num_steps + 1)).astype(int),
        "acceptance_rate": np.asarray(extra["accept_prob"]),
        "step_size": np.asarray(extra["adapt_state.step_size"]),
    }
    posterior = {k: v for k, v in draws.items() if k not in model.hidden_sites}
    loglik = np.asarray(model.pointwise_loglik_draws(draws, y))
    ppc = np.asarray(model.predictive_draws(draws, key_ppc)) if posterior_predictive else None
    idata = _idata.build(model, np.asarray(y), index, posterior, sample_stats=sample_stats,
                         log_likelihood=loglik, posterior_predictive=ppc,
                         attrs={"inference": "nuts", "num_warmup": num_warmup,
                                "target_accept_prob": target_accept_prob})
    check_convergence(idata, list(model.param_names), target_accept_prob=target_accept_prob, warn=warn)
    return idata


