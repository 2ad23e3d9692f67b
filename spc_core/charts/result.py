"""The common result of every chart: one entry per plotted point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from spc_core.rules import RuleSpec, Violation, evaluate_rules, find_violations


@dataclass(frozen=True)
class ChartResult:
    """A scored control chart.

    statistic: the plotted statistic; center, ucl, lcl: per-point lines (stair steps for variable
    subgroup sizes); sigma: per-point sigma of the plotted statistic (zone width used by the rules);
    process_sigma: the process sigma the limits were built from (for attributes charts, NaN);
    default_rules: the rules applied when the caller does not choose (rule 1 only for dispersion
    and time-weighted charts); extra: chart-specific arrays (e.g. CUSUM's lower sum).
    """

    chart: str
    statistic: np.ndarray
    center: np.ndarray
    ucl: np.ndarray
    lcl: np.ndarray
    sigma: np.ndarray
    process_sigma: float
    sigma_method: str
    default_rules: tuple[str, ...]
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)

    def zone_edges(self, k: float) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) edges of the zone k sigmas from the center, per point."""
        return self.center - k * self.sigma, self.center + k * self.sigma

    def evaluate(self, rules: RuleSpec | None = None) -> dict[str, np.ndarray]:
        """Rule id -> indices of points completing a pattern (default rules if None)."""
        return evaluate_rules(
            self.statistic, self.center, self.sigma, self.default_rules if rules is None else rules
        )

    def violations(self, rules: RuleSpec | None = None) -> list[Violation]:
        """Every violation with its whole pattern (see `spc_core.rules.find_violations`)."""
        return find_violations(
            self.statistic, self.center, self.sigma, self.default_rules if rules is None else rules
        )


LOCATION_RULES: tuple[str, ...] = ("we",)
DISPERSION_RULES: tuple[str, ...] = ("nelson1",)


def full(value: float | np.ndarray, like: np.ndarray) -> np.ndarray:
    """`value` broadcast to a fresh float array shaped like `like`."""
    return np.broadcast_to(np.asarray(value, dtype=float), like.shape).copy()


def shewhart(
    chart: str,
    statistic: np.ndarray,
    center: float | np.ndarray,
    sigma: float | np.ndarray,
    *,
    process_sigma: float,
    sigma_method: str,
    default_rules: tuple[str, ...],
    lower_bound: float = -np.inf,
    upper_bound: float = np.inf,
    k: float = 3.0,
) -> ChartResult:
    """A chart with limits center +- k sigma, clamped to the statistic's possible range
    [lower_bound, upper_bound] (so a p chart never shows a negative LCL)."""
    center_arr = full(center, statistic)
    sigma_arr = full(sigma, statistic)
    return ChartResult(
        chart=chart,
        statistic=statistic,
        center=center_arr,
        ucl=np.minimum(center_arr + k * sigma_arr, upper_bound),
        lcl=np.maximum(center_arr - k * sigma_arr, lower_bound),
        sigma=sigma_arr,
        process_sigma=process_sigma,
        sigma_method=sigma_method,
        default_rules=default_rules,
    )
