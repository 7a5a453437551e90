"""Volatility models, one family per module."""

from bayesvol.models.garch import GARCH, GARCHParams
from bayesvol.models.sv import SV, SVParams

__all__ = ["GARCH", "GARCHParams", "SV", "SVParams"]
