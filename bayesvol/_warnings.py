"""Warning classes shared by every layer (the lowest layer, so models and filters may raise them too)."""

from __future__ import annotations

__all__ = ["ConvergenceWarning"]


class ConvergenceWarning(UserWarning):
    """An estimate or a sampler's output may not be what it claims to be (no convergence, divergences, ...)."""
