"""Volatility models, one family per module."""

from bayesvol.models.sv import SV, SVParams

__all__ = ["SV", "SVParams"]
