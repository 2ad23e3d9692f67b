"""Argument checks shared by the spc_core modules: every error names the argument at fault."""

from __future__ import annotations

import numpy as np


def as_float_array(value: object, name: str) -> np.ndarray:
    """`value` as a float array; TypeError naming `name` when it is not numeric."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested sequences
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be numeric (int or float), got dtype {arr.dtype}")
    return arr.astype(float, copy=False)


def as_1d_float(value: object, name: str, *, min_len: int = 1) -> np.ndarray:
    """A 1-D float array with at least `min_len` entries."""
    arr = as_float_array(value, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if len(arr) < min_len:
        raise ValueError(f"{name} must have at least {min_len} entries, got {len(arr)}")
    return arr


def check_span(span: object, name: str) -> int:
    """An integer window of 2..100 points (the range of the constants tables)."""
    if isinstance(span, bool) or not isinstance(span, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {span!r}")
    if not 2 <= span <= 100:
        raise ValueError(f"{name} must be between 2 and 100, got {span}")
    return int(span)


def check_positive(value: object, name: str) -> float:
    """A finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def as_sizes(sizes: object, n_points: int, name: str = "sizes") -> np.ndarray:
    """Sample sizes, one per point (a scalar is repeated); each a finite number > 0."""
    arr = np.asarray(sizes)
    if arr.ndim == 0:
        arr = np.full(n_points, arr)
    n = as_1d_float(arr, name)
    if len(n) != n_points:
        raise ValueError(f"{name} must have one entry per sample ({n_points}), got {len(n)}")
    bad = np.flatnonzero(~np.isfinite(n) | (n <= 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] must be a number > 0, got {n[i]!r}")
    return n
