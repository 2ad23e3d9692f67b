"""Subgrouped data: a 2-D array, one row per subgroup, padded with NaN for smaller subgroups.

`from_labels` builds that array from a flat series and its subgroup labels (the CSV layout);
`subgroup_stats` gives each subgroup's size, mean, range and standard deviation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spc_core._checks import as_1d_float, as_float_array


class SubgroupStats(NamedTuple):
    """Per-subgroup size n, mean, range R and sample standard deviation S (ddof=1)."""

    n: np.ndarray
    mean: np.ndarray
    range: np.ndarray
    sd: np.ndarray


def as_subgroups(data: object, name: str = "data") -> np.ndarray:
    """`data` as a 2-D float array (subgroups x max size); a 1-D array is one value per subgroup."""
    arr = as_float_array(data, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (subgroups x values), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one subgroup")
    if np.isinf(arr).any():
        raise ValueError(f"{name} must not contain infinite values (NaN pads smaller subgroups)")
    return arr


def from_labels(values: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    """Group a flat series by label, in order of first appearance.

    Returns (data, unique_labels): data is subgroups x max size, padded with NaN.
    """
    x = as_1d_float(values, "values")
    lab = np.asarray(labels)
    if lab.ndim != 1 or len(lab) != len(x):
        raise ValueError(f"labels must be 1-D with one label per value ({len(x)}), got {lab.shape}")
    uniq, first, inverse = np.unique(lab, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[inverse]
    counts = np.bincount(group, minlength=len(uniq))
    # Position of each value inside its subgroup: its running count within the group.
    sort_idx = np.argsort(group, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pos = np.empty(len(x), dtype=int)
    pos[sort_idx] = np.arange(len(x)) - np.repeat(starts, counts)
    data = np.full((len(uniq), int(counts.max()) if len(x) else 0), np.nan)
    data[group, pos] = x
    return data, uniq[order]


def subgroup_stats(data: np.ndarray) -> SubgroupStats:
    """Size, mean, range and SD of each row of a NaN-padded 2-D array (NaN where undefined)."""
    present = np.isfinite(data)
    n = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(present, data, 0.0).sum(axis=1)
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        hi = np.where(present, data, -np.inf).max(axis=1)
        lo = np.where(present, data, np.inf).min(axis=1)
        rng = np.where(n > 0, hi - lo, np.nan)
        dev2 = np.where(present, (data - mean[:, None]) ** 2, 0.0).sum(axis=1)
        sd = np.where(n > 1, np.sqrt(dev2 / np.maximum(n - 1, 1)), np.nan)
    return SubgroupStats(n=n, mean=mean, range=rng, sd=sd)
