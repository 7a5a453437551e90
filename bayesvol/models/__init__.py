"""Volatility models, one family per module."""

from bayesvol.models.dfsv import DFSV, DFSVParams, DFSVSimulation
from bayesvol.models.sv import SV, SVParams

__all__ = ["DFSV", "DFSVParams", "DFSVSimulation", "SV", "SVParams"]
