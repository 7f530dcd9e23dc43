"""sft pilot assets: the pilot iterations the profile defines, one pilot per iteration (a dynamic
partition keyed by its sampling-settings hash, kept when the settings change), and a side-by-side
comparison of their QC rates. Scaling uses the selected iteration (`sft.sampling`)."""

import dagster as dg
import polars as pl

from proj_assets.partitions import sft_pilot_partitions
from proj_assets.sft.assets_sampling import AFTER, GRAPH, depends_on, sampled_rows
from proj_assets.sft.budget_guard import guard_step
from proj_assets.sft.data_generation import PILOT_SEED_SLOT
from proj_assets.sft.input_versions import data_code_version
from proj_assets.sft.iterations import iterations, selected_iteration
from proj_assets.sft.keys import (
    BASE_MODEL,
    PILOT,
    PILOT_COMPARISON,
    PILOT_SETTINGS,
    RUNAWAY_CHECK,
    TOKEN_LIMIT_CHECK,
)
from proj_assets.sft.settings import SftSettings
from proj_assets.shared.compute_write import Handoff, compute_op, frame_write_op, save_handoff
from proj_assets.shared.conventions import DUCKDB_POOL, check_key, table_metadata
from proj_assets.shared.gates import gate_problems, gated, not_gated
from proj_assets.shared.plots import figure_markdown, new_figure
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse
from proj_resources.models import ModelSource

PILOT_GATES = [check_key(PILOT, RUNAWAY_CHECK), check_key(PILOT, TOKEN_LIMIT_CHECK)]
SETTING_COLUMNS = ("temperature", "top_p", "max_new_tokens", "stop", "seed")


def rates_plot(table: pl.DataFrame, runaway_max: float, token_limit_max: float) -> dg.MetadataValue:
    fig, ax = new_figure()
    labels = [
        f"{r['pilot_iteration'][3:9]}\nT={r['temperature']} max={r['max_new_tokens']}\nstops={r['n_stops']}"
        for r in table.iter_rows(named=True)
    ]
    x = list(range(table.height))
    ax.bar([i - 0.2 for i in x], table["runaway_rate"], width=0.4, label="runaway")
    ax.bar([i + 0.2 for i in x], table["token_limit_rate"], width=0.4, label="token limit")
    ax.axhline(runaway_max, color="C0", linestyle="--", linewidth=1)
    ax.axhline(token_limit_max, color="C1", linestyle="--", linewidth=1)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("rate")
    ax.set_title("pilot iterations: QC rates (dashed: gate thresholds)")
    ax.legend()
    return figure_markdown(fig, "pilot iterations")


def pilot_assets(
    cfg: SftSettings, budget: float | None, device_tags: dict, warehouse: Warehouse
) -> list[dg.AssetsDefinition]:
    """The pilot iterations of `cfg`, their pilots (sampled on the Celery queue of `device_tags`)
    and their comparison. The comparison is not gated: it reports every iteration's gate verdict,
    so it must run when an iteration failed its gates."""

    @dg.asset(
        key=PILOT_SETTINGS,
        group_name="sft",
        kinds={"polars", "duckdb"},
        pool=DUCKDB_POOL,
        metadata=table_metadata(PILOT_SETTINGS),
    )
    def pilot_settings(context: dg.AssetExecutionContext) -> pl.DataFrame:
        """The profile's pilot iterations (sampling settings and hash key) and which one scaling uses; registers their partitions."""
        rows = [
            {
                "pilot_iteration": key,
                "selected": key == selected_iteration(cfg),
                **{c: str(getattr(s, c)) for c in SETTING_COLUMNS},
            }
            for key, s in iterations(cfg).items()
        ]
        context.instance.add_dynamic_partitions(
            sft_pilot_partitions.name, [r["pilot_iteration"] for r in rows]
        )
        context.add_output_metadata({"iterations": len(rows), "selected": selected_iteration(cfg)})
        return pl.DataFrame(rows)

    @compute_op(
        device_tags,
        name="sft_data_pilot_generations_compute",
        ins={"base": AFTER, "settings": AFTER},
    )
    @gated(PILOT, warehouse)
    def pilot_compute(
        context: dg.OpExecutionContext,
        base_model: ModelSource,
        compute: Compute,
        provenance: Provenance,
        artifacts: ArtifactStore,
    ) -> Handoff:
        """Sample this iteration's pilot and score it with the critic (no pool)."""
        from proj_assets.sft.critic import choose_threshold

        key = context.partition_key
        sampling = iterations(cfg).get(key)
        if sampling is None:
            raise dg.Failure(
                f"pilot iteration {key!r} is not in the active profile (sft.sampling or sft.pilot_iterations); "
                "its rows stay in the warehouse; put its settings back to re-run it",
                allow_retries=False,
            )
        spend = guard_step(context, "pilot", PILOT, cfg, budget, compute)
        df, meta = sampled_rows(
            context,
            cfg,
            base_model,
            compute,
            provenance,
            cfg.pilot_size,
            PILOT_SEED_SLOT,
            "pilot",
            sampling,
            with_critic=True,
        )
        threshold = choose_threshold(df["critic_margin"].to_list(), df["answer_correct"].to_list())
        return save_handoff(
            context,
            artifacts,
            df.with_columns(pl.lit(key).alias("pilot_iteration")),
            {
                **meta,
                **spend,
                "critic_threshold_chosen": threshold,
                "selected": key == selected_iteration(cfg),
            },
        )

    write_pilot = frame_write_op("sft_data_pilot_generations_write")

    @dg.graph_asset(
        key=PILOT,
        ins={"base": depends_on(BASE_MODEL), "settings": depends_on(PILOT_SETTINGS)},
        partitions_def=sft_pilot_partitions,
        metadata=table_metadata(PILOT, partition_expr="pilot_iteration"),
        code_version=data_code_version(),
        **GRAPH,
    )
    def pilot_generations(base, settings):
        """A small pilot of base-model completions per sampling-settings iteration, with critic margins: the selected
        iteration's QC gates must pass before generation scales up, and its program labels choose the critic threshold."""
        return write_pilot(pilot_compute(base=base, settings=settings))

    @dg.asset(
        key=PILOT_COMPARISON,
        group_name="sft",
        kinds={"polars", "duckdb"},
        pool=DUCKDB_POOL,
        deps=[PILOT],
        metadata={
            **table_metadata(PILOT_COMPARISON),
            **not_gated("it reports every iteration's gate verdict, failed ones included"),
        },
    )
    def pilot_comparison(context: dg.AssetExecutionContext, warehouse: Warehouse) -> pl.DataFrame:
        """Every pilot iteration ever run side by side: its settings, QC rates, gate verdict and whether scaling uses it."""
        from proj_assets.sft.pilot_report import compare_iterations

        rows = warehouse.query(
            "select pilot_iteration, sampling_params, runaway, token_limit, answer_correct "
            "from sft_data.pilot_generations"
        )
        passed = {
            key: not gate_problems(context.instance, PILOT_GATES, [key])
            for key in rows["pilot_iteration"].unique()
        }
        table = compare_iterations(rows, passed, selected_iteration(cfg))
        context.add_output_metadata(
            {
                "iterations": table.height,
                "selected": selected_iteration(cfg),
                "rates": rates_plot(table, cfg.qc.runaway_max, cfg.qc.token_limit_max),
            }
        )
        return table

    return [pilot_settings, pilot_generations, pilot_comparison]
