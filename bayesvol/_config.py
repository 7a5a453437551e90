"""Numerical set-up applied once when bayesvol is imported.

* float64 everywhere: maximum likelihood, standard errors and long latent paths need it, and mixing
  precisions between the simulator, the likelihood and the NumPyro program would break the promise that
  they share one implementation.
* On CPU, expose one XLA host device per core so NUTS chains run in parallel. This only takes effect if
  JAX has not started its backend yet; set ``XLA_FLAGS`` yourself to override.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    _cores = max(1, min(os.cpu_count() or 1, 8))
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_cores}"
    ).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
