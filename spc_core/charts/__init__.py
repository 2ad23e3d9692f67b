"""Control charts: limits and plotted statistics for variables, attributes and time-weighted data.

Everything the server and the CLI need is re-exported here, e.g. ``spc_core.charts.imr_limits``.
"""

from spc_core.charts.variables import ImrLimits, imr_limits

__all__ = ["ImrLimits", "imr_limits"]
