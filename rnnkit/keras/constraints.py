"""``keras.constraints``."""
from ..constraints import (Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm, get, max_norm, min_max_norm, non_neg,
                           serialize, unit_norm)

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "get", "max_norm", "min_max_norm", "non_neg",
           "serialize", "unit_norm"]
