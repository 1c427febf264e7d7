"""MIMO detection ``y = H x + w`` through an i.i.d. Rayleigh channel drawn per instance, and its detectors:
ZF, LMMSE, ML, projected gradient, TPG, OAMP and OAMP-Net."""

__version__ = "0.1.0"

from .problem import (MODULATIONS, BitCount, BitErrors, Constellation, ConstellationDetection, MIMODetection,
                      SymbolCount, SymbolErrors, rayleigh_lipschitz_bound)
from .solvers import (LMMSE, OAMP, TPG, DetectorContext, MaximumLikelihood, OAMPContext, OAMPNet, OAMPState,
                      OneShotContext, ProjectedGradient, ZeroForcing, regularized_inverse)

__all__ = ["MIMODetection", "Constellation", "ConstellationDetection", "MODULATIONS", "SymbolErrors", "SymbolCount",
           "BitErrors", "BitCount", "rayleigh_lipschitz_bound", "ZeroForcing", "LMMSE", "MaximumLikelihood",
           "ProjectedGradient", "TPG", "OAMP", "OAMPNet", "regularized_inverse", "OneShotContext",
           "DetectorContext", "OAMPContext", "OAMPState"]
