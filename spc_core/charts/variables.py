"""Variables charts: individuals and moving range (I-MR), Xbar-R, Xbar-S.

Sources: Montgomery, *Introduction to Statistical Quality Control*, 6th ed., ch. 6 (Xbar-R and
Xbar-S, eqs. 6.4-6.5 and 6.27-6.33; individuals chart section 6.4); NIST/SEMATECH e-Handbook
6.3.2.1 (Xbar and R), 6.3.2.2 (Xbar and S), 6.3.2.3 (individuals charts).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spc_core import constants
from spc_core._checks import as_1d_float, check_span


class ImrLimits(NamedTuple):
    """Phase I limits of an individuals chart and its moving-range companion.

    ``sigma`` is the within (short-term) sigma of the individual values, MR-bar / d2(mr_span).
    """

    center: float
    sigma: float
    ucl: float
    lcl: float
    mr_center: float
    mr_ucl: float
    mr_lcl: float


def moving_range(values: object, span: int = 2, *, name: str = "values") -> np.ndarray:
    """Moving ranges max - min over each window of `span` consecutive values.

    The result has the length of `values`; the first span - 1 entries, and every window touching
    a NaN, are NaN.
    """
    x = as_1d_float(values, name)
    check_span(span, "mr_span")
    out = np.full(x.shape, np.nan)
    if len(x) >= span:
        windows = np.lib.stride_tricks.sliding_window_view(x, span)
        out[span - 1 :] = windows.max(axis=1) - windows.min(axis=1)
    return out


def imr_limits(values: object, mr_span: int = 2) -> ImrLimits:
    """Individuals and moving-range limits from a baseline.

    center = mean of the values, sigma = MR-bar / d2(mr_span), limits center +- 3 sigma;
    MR chart: MR-bar, D4 MR-bar, D3 MR-bar. NaN values are skipped (a moving range touching a NaN
    is not used).
    """
    x = as_1d_float(values, "values")
    check_span(mr_span, "mr_span")
    finite = np.isfinite(x)
    if np.isinf(x).any():
        raise ValueError("values must not contain infinite entries (use NaN for missing ones)")
    mr = moving_range(x, mr_span)
    mr = mr[np.isfinite(mr)]
    if mr.size == 0:
        raise ValueError(
            f"values must contain at least {mr_span} consecutive non-NaN entries to form a moving "
            f"range of span {mr_span}, got {int(finite.sum())} non-NaN of {len(x)}"
        )
    center = float(x[finite].mean())
    mr_bar = float(mr.mean())
    sigma = mr_bar / constants.d2(mr_span)
    return ImrLimits(
        center=center,
        sigma=sigma,
        ucl=center + 3.0 * sigma,
        lcl=center - 3.0 * sigma,
        mr_center=mr_bar,
        mr_ucl=constants.D4(mr_span) * mr_bar,
        mr_lcl=constants.D3(mr_span) * mr_bar,
    )
