"""Long compute apart from the short warehouse write.

DuckDB has one writer process at a time, so every step that writes the warehouse joins the
`duckdb` pool (one slot). A step that trains for minutes and then writes a few rows must not hold
that slot while it trains: the asset becomes a graph of two ops instead of one,

    compute op (no pool)  --Handoff-->  write op (pool "duckdb")

The compute op writes its result as Parquet under the artifact store and returns a small
`Handoff` (path, row count, the materialization metadata it computed). The handoff travels
through `HANDOFF_IO_MANAGER`, a filesystem I/O manager under the data folder, never in memory, so
the two ops may run in different processes or on different Celery workers that share the data
folder. The write op loads the Parquet and writes it in one short transaction, either by
returning the frame to the DuckDB I/O manager (`frame_write_op`) or by its own SQL.

Usage (a graph-backed asset keeps the asset key, partitions, checks and metadata):

    @compute_op(name="my_asset_compute")
    def my_compute(context, upstream, artifacts: ArtifactStore) -> Handoff:
        return save_handoff(context, artifacts, frame, {"rows": frame.height})

    write_my_asset = frame_write_op("my_asset_write")

    @dg.graph_asset(key=KEY, partitions_def=..., metadata=table_metadata(KEY, partition_expr=...))
    def my_asset(upstream):
        return write_my_asset(my_compute(upstream))
"""

import io
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import polars as pl

from proj_assets.cluster_settings import training_queue_tags
from proj_assets.profiles import load_profile
from proj_assets.shared.conventions import DUCKDB_POOL

HANDOFF_IO_MANAGER = "handoff_io_manager"
HANDOFF_KIND = "handoff"  # folder under the artifact store that holds the Parquet handoffs


@dataclass(frozen=True)
class Handoff:
    """What a compute op hands to its write op: small, picklable, no frame inside."""

    path: str
    rows: int
    partition_keys: tuple[str, ...]
    metadata: dict = field(default_factory=dict)


def handoff_io_manager(root: Path) -> dg.FilesystemIOManager:
    """Pickled handoffs under `<root>/handoff`; `root` is the data folder every worker reaches."""
    return dg.FilesystemIOManager(base_dir=str(root / HANDOFF_KIND))


def _partition_keys(context: dg.OpExecutionContext) -> tuple[str, ...]:
    return tuple(context.partition_keys) if context.has_partition_key_range or context.has_partition_key else ()


def save_handoff(context: dg.OpExecutionContext, artifacts, frame: pl.DataFrame, metadata: dict) -> Handoff:
    """Write `frame` atomically as Parquet under the artifact store, named by run and step (kept
    after the write, so a retried write step finds it)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    relative = f"{HANDOFF_KIND}/{context.run_id}/{context.op_handle}.parquet"
    path = artifacts.write_bytes(relative, buffer.getvalue())
    return Handoff(str(path), frame.height, _partition_keys(context), dict(metadata))


def load_handoff(handoff: Handoff) -> pl.DataFrame:
    frame = pl.read_parquet(handoff.path)
    if frame.height != handoff.rows:
        raise dg.Failure(f"handoff {handoff.path} holds {frame.height} rows, its compute step wrote {handoff.rows}")
    return frame


def compute_op(tags: dict | None = None, **op_kwargs):
    """`@dg.op` for the long part: no pool; its output is a `Handoff` on the filesystem; in
    cluster mode it goes to the Celery queue of the profile's compute device."""
    return dg.op(out=dg.Out(Handoff, io_manager_key=HANDOFF_IO_MANAGER),
                 tags={**training_queue_tags(load_profile().compute.device), **(tags or {})}, **op_kwargs)


def write_op(**op_kwargs):
    """`@dg.op` for the short part: joins the `duckdb` pool, so writes never overlap."""
    return dg.op(pool=DUCKDB_POOL, **op_kwargs)


def frame_write_op(name: str) -> dg.OpDefinition:
    """A write op that hands the Parquet's rows to the asset's DuckDB I/O manager (which deletes
    and rewrites the run's partitions in one transaction) with the compute op's metadata."""

    @write_op(name=name)
    def _write(context: dg.OpExecutionContext, handoff: Handoff) -> pl.DataFrame:
        frame = load_handoff(handoff)
        context.add_output_metadata(handoff.metadata)
        return frame

    return _write
