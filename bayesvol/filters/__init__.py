"""Likelihood filters and importance samplers for latent-state models (pure JAX, ``lax.scan`` inside)."""
