"""Volatility models, one family per module."""

from bayesvol.models import dfsv_filters
from bayesvol.models.dfsv import DFSV, DFSVParams, DFSVSimulation
from bayesvol.models.sv import SV, SVParams

__all__ = ["DFSV", "DFSVParams", "DFSVSimulation", "SV", "SVParams", "dfsv_filters"]
