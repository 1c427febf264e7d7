"""Text the workbench writes: strict JSON values (and, as they move here, number formats and tables)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

__all__ = ["json_safe", "strict_json"]


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) replaced by ``None``, NumPy values as Python ones."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def strict_json(value: Any) -> str:
    """``value`` as strict JSON (RFC 8259): NaN and infinities become ``null``, never ``NaN``/``Infinity``."""
    return json.dumps(json_safe(value), indent=2, allow_nan=False)
