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
returning the frame to the DuckDB I/O manager (`frame_write_op`) or by its own SQL, then removes
the Parquet (`remove_handoff`). A run that failed between the two leaves its Parquet for a retry of
the write step; the next compute step of any later run removes the Parquet and the pickled
handoffs of runs that no longer run and will not be retried (`remove_finished_handoffs`), so
neither folder grows with the history. Both folders are per profile (`handoff_io_manager`).

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
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import polars as pl

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
    data_version: str | None = None  # the written asset's content DataVersion, when it has one


def handoff_io_manager(root: Path, namespace: str) -> dg.FilesystemIOManager:
    """Pickled handoffs under `<root>/handoff/<namespace>`; `root` is the data folder every worker
    reaches, `namespace` the profile's name. Each profile has its own instance, and an instance
    knows only its own runs: the handoffs of one namespace are cleaned by its instance alone, so
    two profiles sharing a data folder never remove each other's (`save_handoff`)."""
    return dg.FilesystemIOManager(base_dir=str(root / HANDOFF_KIND / namespace))


def _partition_keys(context: dg.OpExecutionContext) -> tuple[str, ...]:
    return (
        tuple(context.partition_keys)
        if context.has_partition_key_range or context.has_partition_key
        else ()
    )


def _may_still_be_read(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether a run's handoffs may still be read: some run of its group (the run, its retries and
    re-executions) is queued or running, or failed and waits for the retry daemon to launch its
    retry (`dagster/will_retry` true, no `dagster/auto_retry_run_id` yet). A retry re-executes from
    the failed write step and reads the handoff the original run's compute step wrote."""
    if instance.get_run_by_id(run_id) is None:
        return False
    _, group = instance.get_run_group(run_id) or ("", [])
    return any(not run.is_finished or run.is_complete_and_waiting_to_retry for run in group)


def remove_finished_handoffs(instance: dg.DagsterInstance, *folders: Path) -> list[str]:
    """Delete, under each of `folders` (the Parquet handoffs, the I/O manager's pickled `Handoff`s),
    the folders of runs whose handoffs nobody reads any more (their write step succeeded and
    removed its file, or the run failed and neither it nor a retry of it will run again); the run
    ids removed."""
    removed = []
    for folder in folders:
        for run_folder in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not _may_still_be_read(instance, run_folder.name):
                shutil.rmtree(run_folder, ignore_errors=True)
                removed.append(run_folder.name)
    return removed


def remove_handoff(handoff: Handoff) -> None:
    """Delete a handoff once its rows are written (and its run's folder when it is empty)."""
    path = Path(handoff.path)
    path.unlink(missing_ok=True)
    if path.parent.is_dir() and not any(path.parent.iterdir()):
        path.parent.rmdir()


def save_handoff(
    context: dg.OpExecutionContext,
    artifacts,
    frame: pl.DataFrame,
    metadata: dict,
    data_version: str | None = None,
) -> Handoff:
    """Write `frame` atomically as Parquet under the artifact store, named by namespace, run and
    step (kept until its write step has written it, so a retried write step finds it); first
    remove what finished runs of this namespace left behind, Parquet and pickles. The namespace is
    the handoff I/O manager's folder name (`handoff_io_manager`)."""
    pickles = Path(getattr(context.resources, HANDOFF_IO_MANAGER).base_dir)
    remove_finished_handoffs(context.instance, artifacts.path(HANDOFF_KIND, pickles.name), pickles)
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    relative = f"{HANDOFF_KIND}/{pickles.name}/{context.run_id}/{context.op_handle}.parquet"
    path = artifacts.write_bytes(relative, buffer.getvalue())
    return Handoff(str(path), frame.height, _partition_keys(context), dict(metadata), data_version)


def load_handoff(handoff: Handoff) -> pl.DataFrame:
    frame = pl.read_parquet(handoff.path)
    if frame.height != handoff.rows:
        raise dg.Failure(
            f"handoff {handoff.path} holds {frame.height} rows, its compute step wrote {handoff.rows}"
        )
    return frame


def compute_op(tags: dict, **op_kwargs):
    """`@dg.op` for the long part: no pool; its output is a `Handoff` on the filesystem. `tags`
    carry the Celery queue of the profile's compute device (`cluster_settings.training_queue_tags`)."""
    return dg.op(out=dg.Out(Handoff, io_manager_key=HANDOFF_IO_MANAGER), tags=tags, **op_kwargs)


def write_op(**op_kwargs):
    """`@dg.op` for the short part: joins the `duckdb` pool, so write steps queue for its one slot
    (two claims in the same milliseconds can both win; DuckDB's file lock then keeps them apart)."""
    return dg.op(pool=DUCKDB_POOL, **op_kwargs)


def frame_write_op(name: str) -> dg.OpDefinition:
    """A write op that hands the Parquet's rows to the asset's DuckDB I/O manager (which deletes
    and rewrites the run's partitions in one transaction) with the compute op's metadata."""

    @write_op(name=name, out=dg.Out(pl.DataFrame))
    def _write(context: dg.OpExecutionContext, handoff: Handoff):
        version = dg.DataVersion(handoff.data_version) if handoff.data_version else None
        yield dg.Output(load_handoff(handoff), metadata=handoff.metadata, data_version=version)
        remove_handoff(handoff)  # runs after the I/O manager stored the output

    return _write
