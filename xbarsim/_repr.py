"""Compact ``repr`` of the result and circuit dataclasses.

The dataclass default printed every array in full: ``print(sol)`` of a
64 x 48 solve with five inputs ran to several hundred lines.
Arrays show as their shape and dtype; lists and dicts of arrays
as their length and keys; other fields as they are."""

from __future__ import annotations

import dataclasses

import numpy as np


def _short(value):
    if isinstance(value, np.ndarray):
        if value.ndim == 0 or value.size == 1:
            return repr(value.reshape(-1)[0].item()) if value.size else f"array({value.shape}, {value.dtype})"
        return f"array({value.shape}, {value.dtype})"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) for v in value):
        return f"[{len(value)} arrays: {', '.join(str(v.shape) for v in value[:3])}{', ...' if len(value) > 3 else ''}]"
    if isinstance(value, dict) and any(isinstance(v, np.ndarray) for v in value.values()):
        return "{" + ", ".join(f"{k!r}: {_short(v)}" for k, v in value.items()) + "}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def compact_repr(self):
    """``Name(field=value, ...)`` over the fields shown in a repr, arrays by shape."""
    parts = [f"{f.name}={_short(getattr(self, f.name))}" for f in dataclasses.fields(self) if f.repr]
    return f"{type(self).__name__}({', '.join(parts)})"
