"""Edge sources, one module per protocol, registered by kind (see `base.SOURCE_KINDS`)."""

from edge_agent.sources import modbus, opcua  # noqa: F401  (importing registers the kinds)
from edge_agent.sources.base import SOURCE_KINDS, Sample, Source, SourceConfig, create_source

__all__ = ["SOURCE_KINDS", "Sample", "Source", "SourceConfig", "create_source"]
