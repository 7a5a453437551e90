"""Probability laws used by the volatility models."""

from bayesvol.distributions.priors import ScaledBeta, ShiftedExponential

__all__ = ["ScaledBeta", "ShiftedExponential"]
