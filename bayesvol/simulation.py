"""``simulate``: draw data from any bayesvol model with given parameters."""

from __future__ import annotations

import jax

from bayesvol.models import _base


def simulate(model, params, num_timesteps: int, seed: int = 0):
    """Simulate observations and latent states from ``model`` at ``params``.

    The same ``initial``/``transition``/``emission`` code that defines the NumPyro program and the
    filters draws the path, so simulated data follow exactly the model that is estimated.

    Parameters
    ----------
    model : bayesvol model
        E.g. :class:`bayesvol.models.SV`.
    params : <Model>Params or dict
        Parameter values by name; each must lie in its prior's support.
    num_timesteps : int
        Length of the simulated series (at least 2).
    seed : int
        Seed of the JAX random number generator.

    Returns
    -------
    Simulation
        NamedTuple with ``y`` (observations) and ``h`` (latent log-variances), numpy arrays.

    Examples
    --------
    >>> import bayesvol
    >>> sim = bayesvol.simulate(bayesvol.models.SV(), {"mu": 0.0, "phi": 0.9, "sigma": 0.3}, 100, seed=0)
    >>> sim.h.shape
    (100,)
    """
    if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int) or num_timesteps < 2:
        raise ValueError(f"num_timesteps must be an integer >= 2, got {num_timesteps!r}")
    params = _base.as_params(model, params)
    key = jax.random.PRNGKey(seed)
    if hasattr(model, "simulate"):
        return model.simulate(params, num_timesteps, key)
    return _base.simulate_latent(model, params, num_timesteps, key)
