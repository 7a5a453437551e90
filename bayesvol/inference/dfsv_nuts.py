"""NUTS set-up for [`DFSV`][bayesvol.models.DFSV]: a start from the Bellman smoother and an initial mass matrix.

`nuts_options` returns the settings [`bayesvol.sample`][bayesvol.sample] passes to NUTS for a DFSV model.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
from numpyro.infer import init_to_median
from numpyro.infer.util import initialize_model

from bayesvol.filters.dfsv_methods import filter_states
from bayesvol.models._dfsv_priors import solve_discrete_lyapunov, unconstrained_from_stationary

__all__ = ["nuts_options"]

# Sites of the program with real support, where a start value can be jittered freely.
_REAL_SITES = ("h_std", "h_id_std", "mu", "mu_id", "lambda_r_free", "Phi_f_free", "Phi_h_free")


def nuts_options(model, y, dense_mass: bool = True) -> dict:
    """NUTS settings used by [`bayesvol.sample`][bayesvol.sample]: a start and an initial mass matrix (marginalised
program).

    Start (``init_strategy``): the parameters are the first of ``model.start_values`` (principal
    components); the log-variance paths are smoothed by the Bellman filter at those parameters
    ([`bayesvol.filters.dfsv_methods.filter_states`][bayesvol.filters.dfsv_methods.filter_states]) and mapped to the
    program's standardised innovations ``h_std`` (and ``h_id_std``). Real-valued sites get a jitter of standard
    deviation 0.1 drawn with each chain's key, so chains start apart.

    Mass matrix (``inverse_mass_matrix``, with ``dense_mass``): the inverse of the curvature of the
    negative log density in the parameters' unconstrained coordinates at that start, log-variance
    innovations held fixed. The curvature is the complete-data one (the derivative of the
    Fisher-identity gradient with the factors' smoothing moments held fixed), at least the observed one,
    so the initial momentum scales err on the small side. Warm-up adapts both further.

    Without them warm-up starts at ``h = mu`` with a unit mass matrix, and on ``T = 1000`` its first
    windows run at the maximum tree depth with step sizes near 1e-3. The full-latent program
    (``marginalize_factors=False``) keeps the defaults (an empty dict).
    """
    if not model.marginalize_factors:
        return {}
    init = _nuts_init_strategy(model, y)
    if not dense_mass:
        return {"init_strategy": init}
    return {"init_strategy": init, "inverse_mass_matrix": _initial_inverse_mass(model, y, init)}


def _initial_inverse_mass(model, y, init) -> dict:
    y = jnp.asarray(y, dtype=jnp.float64)
    info = initialize_model(jax.random.PRNGKey(0), model.program, model_args=(y,), init_strategy=init)
    sites = tuple(n for n in model.dense_mass_sites if n in info.param_info.z)
    point = info.param_info.z
    flat, unravel = jax.flatten_util.ravel_pytree({n: point[n] for n in sites})

    def gradient(x):
        return jax.grad(lambda x: info.potential_fn({**point, **unravel(x)}))(x)

    curvature = np.asarray(jax.jit(jax.jacfwd(gradient))(flat))
    curvature = 0.5 * (curvature + curvature.T)
    eigval, eigvec = np.linalg.eigh(curvature)
    if not np.all(np.isfinite(eigval)) or eigval.max() <= 0:
        return {}
    # Directions of non-positive curvature get the scale of the flattest positive one.
    eigval = np.maximum(eigval, eigval[eigval > 0].min())
    return {sites: jnp.asarray((eigvec / eigval) @ eigvec.T)}


def _nuts_init_strategy(model, y):
    y = np.asarray(y, dtype=np.float64)
    k, n = model.num_factors, y.shape[1]
    start = model.start_values(y)[0]
    states = filter_states(model, start, y, method="bellman")
    mu, phi_h, q_h = (np.asarray(start[name]) for name in ("mu", "Phi_h", "Q_h"))
    h = states.h_smoothed
    # The standardised innovations that give the smoothed path: the inverse of the program's log_variance_path.
    chol_q = np.linalg.cholesky(q_h)
    chol_0 = np.linalg.cholesky(np.asarray(solve_discrete_lyapunov(phi_h, q_h)))
    z_h = np.vstack([np.linalg.solve(chol_0, h[0] - mu),
                     np.linalg.solve(chol_q, (h[1:] - mu - (h[:-1] - mu) @ phi_h.T).T).T])
    rows, cols = np.nonzero(np.tri(n, k, -1, dtype=bool))
    values = {"h_std": z_h, "mu": mu, "Q_h": q_h, "lambda_r_free": np.asarray(start["lambda_r"])[rows, cols],
              "Phi_f_free": np.asarray(unconstrained_from_stationary(start["Phi_f"])),
              "Phi_h_free": np.asarray(unconstrained_from_stationary(phi_h))}
    if model.idiosyncratic == "constant":
        values["sigma2"] = np.asarray(start["sigma2"])
    else:
        mu_id, phi_id, sigma_id = (np.asarray(start[name]) for name in ("mu_id", "phi_id", "sigma_id"))
        h_id = states.h_id_smoothed
        values.update(mu_id=mu_id, phi_id=phi_id, sigma_id=sigma_id,
                      h_id_std=np.vstack([(h_id[0] - mu_id) * np.sqrt(1.0 - phi_id**2) / sigma_id,
                                          (h_id[1:] - mu_id - phi_id * (h_id[:-1] - mu_id)) / sigma_id]))
    return partial(_init_near, values={name: jnp.asarray(v) for name, v in values.items()})


def _init_near(site=None, values=None, jitter: float = 0.1):
    """Init strategy: ``values[name]`` (plus N(0, jitter^2) noise on real-valued sites, from the chain's key);
    sites not in ``values`` start at their prior median."""
    if site is None:
        return partial(_init_near, values=values, jitter=jitter)
    if site["type"] == "sample" and not site["is_observed"] and site["name"] in values:
        value = values[site["name"]]
        key = site["kwargs"].get("rng_key")
        if site["name"] in _REAL_SITES and key is not None:
            value = value + jitter * jax.random.normal(key, jnp.shape(value))
        return value
    return init_to_median(site, num_samples=15)
