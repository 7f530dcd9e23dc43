"""Typed ConfigurableResources shared by every domain."""

from proj_resources.artifacts import ArtifactStore
from proj_resources.compute import Compute
from proj_resources.market_sources import MarketSource
from proj_resources.provenance import Provenance
from proj_resources.warehouse import Warehouse, warehouse_io_manager

__all__ = ["ArtifactStore", "Compute", "MarketSource", "Provenance", "Warehouse", "warehouse_io_manager"]
