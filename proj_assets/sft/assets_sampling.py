"""What the sft generating assets share: the base model they load, the revision rows are stamped
with, sampling a pilot or shard with QC flags and provenance, and the selected pilot's current rows."""

from typing import TypedDict

import dagster as dg
import polars as pl

from proj_assets.sft.input_versions import generation_inputs, pilot_inputs
from proj_assets.sft.iterations import selected_iteration
from proj_assets.sft.keys import BASE_MODEL, seed_and_limit_threads
from proj_assets.sft.lineage import latest_artifact_path, latest_metadata
from proj_assets.sft.settings import SamplingSettings, SftSettings
from proj_resources import Compute, Warehouse
from proj_resources.models import ModelSource


class GraphArgs(TypedDict):
    """Asset arguments the sft assets share (typed, so `**GRAPH` matches dagster's overloads)."""

    group_name: str
    kinds: set[str]


class TableArgs(GraphArgs):
    """GraphArgs plus the pool of an asset that writes its table itself."""

    pool: str


GRAPH: GraphArgs = {"group_name": "sft", "kinds": {"polars", "duckdb"}}
AFTER = dg.In(dg.Nothing)  # an upstream asset the compute op depends on without loading it


def depends_on(key: list[str]) -> dg.AssetIn:
    """Depend on `key` without loading it (any of its partitions: e.g. the selected pilot iteration)."""
    return dg.AssetIn(key=key, dagster_type=dg.Nothing, partition_mapping=dg.AllPartitionMapping())


def load_model(context, compute: Compute):
    """The base model in completion mode (its `completion_mode_only` gate is upstream of every
    asset that samples from it, so `gated` has checked it)."""
    from proj_assets.sft.completion_model import load_completion_model

    return load_completion_model(latest_artifact_path(context, BASE_MODEL), compute.torch_device())


def model_revision_of(context) -> str | None:
    """The revision the latest base model materialization recorded (None before there is one):
    writers stamp it on their rows and readers compare it with theirs."""
    return latest_metadata(context, BASE_MODEL).get("model_revision")


def model_identity(context, base_model: ModelSource) -> tuple[str, str | None]:
    path = latest_artifact_path(context, BASE_MODEL)
    return base_model.path or f"demo:{path.name}", model_revision_of(context)


def sampled_rows(
    context,
    cfg: SftSettings,
    base_model,
    compute,
    provenance,
    n: int,
    slot: int,
    prefix: str,
    sampling: SamplingSettings,
    with_critic: bool = False,
):
    """Examples sampled with `sampling`, with QC flags, per-row seeds and provenance (and critic
    margins for the pilot), plus their metadata; refuses clearly when no row is free of QC flags."""
    from proj_assets.sft.critic import auc_by_type, critic_scores
    from proj_assets.sft.data_generation import generate_examples
    from proj_assets.sft.prompts import PromptBuilder
    from proj_assets.sft.qc import clean

    builder = PromptBuilder(n_shots=cfg.prompt_shots, critic_shots=cfg.critic_shots)
    with compute.meter() as meter:
        seed_and_limit_threads(compute, cfg, slot)
        cm = load_model(context, compute)
        df = generate_examples(
            cm.model,
            cm.tokenizer,
            n=n,
            data_seed=cfg.data_seed,
            slot=slot,
            id_prefix=prefix,
            builder=builder,
            sampling=sampling,
            qc=cfg.qc,
            log=context.log.info,
        )
        if with_critic:
            scores = critic_scores(
                cm.model,
                cm.tokenizer,
                builder,
                df["instruction"].to_list(),
                df["completion"].to_list(),
                sampling.batch_size,
                log=context.log.info,
            )
            df = df.with_columns(pl.Series("critic_margin", scores.margins, dtype=pl.Float64))
    counts = {
        "generated": df.height,
        **{f: int(df[f].sum()) for f in ("runaway", "token_limit", "empty")},
        "clean": clean(df).height,
    }
    if counts["clean"] == 0:
        raise dg.Failure(
            f"{prefix}: every generation is QC-flagged, nothing is usable: {counts}",
            metadata=counts,
            allow_retries=False,
        )
    model_id, revision = model_identity(context, base_model)
    params = {
        "sampling": sampling.model_dump(),
        "qc": cfg.qc.model_dump(),
        "prompt_template": builder.template_hash(),
        "slot": slot,
        "data_seed": cfg.data_seed,
        "n": n,
        "critic": with_critic,
    }
    inputs = (pilot_inputs if with_critic else generation_inputs)(cfg, revision, sampling)
    df = provenance.stamp(df, context.run_id, None, params, model_id, revision, inputs=inputs)
    df = df.with_columns(pl.col("row_seed").alias("seed")).drop("row_seed")
    meta = {
        **counts,
        "runaway_rate": float(df["runaway"].mean()),
        "token_limit_rate": float(df["token_limit"].mean()),
        "program_accuracy": float(df["answer_correct"].mean()),
        "seconds_per_example": meter.seconds / n,
        **meter.metadata(),
        **provenance.metadata(),
    }
    if with_critic:
        meta.update(
            critic_position_prior=scores.position_prior,
            critic_auc=dg.MetadataValue.json(
                auc_by_type(
                    scores.margins, df["answer_correct"].to_list(), df["task_type"].to_list()
                )
            ),
        )
    return df, meta


def selected_pilot_rows(context, warehouse: Warehouse, cfg: SftSettings) -> pl.DataFrame:
    """The selected pilot iteration's current rows (critic margin, program label, task type), or
    a clear error when it has none (never run, or only rows of superseded inputs)."""
    from proj_resources.fingerprints import current_rows, staleness

    iteration = selected_iteration(cfg)
    if not warehouse.table_exists("sft_data", "pilot_generations"):
        raise dg.Failure(
            "sft/data/pilot_generations does not exist yet: materialize the selected pilot iteration"
        )
    rows = warehouse.query(
        "select * from sft_data.pilot_generations where pilot_iteration = ?", [iteration]
    )
    inputs = pilot_inputs(cfg, model_revision_of(context), cfg.sampling)
    current = current_rows(rows, inputs)
    if current.height == 0:
        raise dg.Failure(
            f"sft/data/pilot_generations has no current rows for the selected iteration {iteration!r} "
            f"({staleness(rows, inputs)}): materialize that partition",
            allow_retries=False,
        )
    return current.select("critic_margin", "answer_correct", "task_type")
