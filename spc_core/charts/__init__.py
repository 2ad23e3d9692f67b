"""Control charts: limits and plotted statistics for variables, attributes and time-weighted data.

Phase I fitting (`fit_*`, `imr_limits`) is kept apart from phase II scoring (`*_chart`), which
never moves the limits. Every chart returns a `ChartResult` (statistic, center, ucl, lcl and the
sigma of the plotted statistic per point).
"""

from spc_core.charts.attributes import (
    AttributeParams,
    c_chart,
    fit_c,
    fit_p,
    fit_u,
    np_chart,
    p_chart,
    u_chart,
)
from spc_core.charts.result import ChartResult
from spc_core.charts.time_weighted import CusumChart, cusum_chart, ewma_chart
from spc_core.charts.variables import (
    ImrLimits,
    ProcessParams,
    fit_individuals,
    fit_subgroups,
    imr,
    imr_limits,
    individuals_chart,
    moving_range,
    moving_range_chart,
    range_chart,
    s_chart,
    xbar_chart,
    xbar_r,
    xbar_s,
)

__all__ = [
    "AttributeParams",
    "ChartResult",
    "CusumChart",
    "ImrLimits",
    "ProcessParams",
    "c_chart",
    "cusum_chart",
    "ewma_chart",
    "fit_c",
    "fit_individuals",
    "fit_p",
    "fit_subgroups",
    "fit_u",
    "imr",
    "imr_limits",
    "individuals_chart",
    "moving_range",
    "moving_range_chart",
    "np_chart",
    "p_chart",
    "range_chart",
    "s_chart",
    "u_chart",
    "xbar_chart",
    "xbar_r",
    "xbar_s",
]
