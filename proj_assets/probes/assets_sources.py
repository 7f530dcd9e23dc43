"""The probes inputs that live outside the graph, as observable source assets: the model folder
(its id and weights revision) and the corpus source (the content hash of its rows). Observing them
records what they hold now (UI: Observe sources); the assets built on them show Unsynced when it
changed. Also the content-based data version the probes assets report."""

from pathlib import Path

import dagster as dg

from proj_assets.probes.corpus import corpus_hash, load_configured_corpus
from proj_assets.probes.extraction import read_model_config
from proj_assets.probes.settings import ProbesSettings
from proj_resources.models import ModelSource, check_model_dir

MODEL_SOURCE = ["probes", "source", "model"]
CORPUS_SOURCE = ["probes", "source", "corpus"]


def model_identity(model: ModelSource) -> tuple[str, str]:
    """(model id, weights revision) of the configured model folder."""
    config = read_model_config(str(check_model_dir(str(model.path))))
    return getattr(config, "_name_or_path", "") or Path(str(model.path)).name, (
        model.resolved_revision()
    )


def source_assets(settings: ProbesSettings) -> list[dg.AssetsDefinition]:
    """The model folder and the corpus source, outside the graph: observing them records the
    content hash of what they hold now (UI: Observe sources), and the assets built on them show
    Unsynced when it changed."""

    @dg.multi_observable_source_asset(
        name="probes_source_model",
        specs=[
            dg.AssetSpec(
                MODEL_SOURCE,
                description="The local model folder the activations come from: id and weights revision.",
                kinds={"huggingface"},
            )
        ],
        group_name="probes",
        required_resource_keys={"probe_model"},
    )
    def model_folder(context) -> dg.ObserveResult:
        model_id, revision = model_identity(context.resources.probe_model)
        return dg.ObserveResult(data_version=dg.DataVersion(f"{model_id}@{revision}"))

    @dg.multi_observable_source_asset(
        name="probes_source_corpus",
        specs=[
            dg.AssetSpec(
                CORPUS_SOURCE,
                description="The corpus file (or the generated corpus): the content hash of its rows.",
                kinds={"polars"},
            )
        ],
        group_name="probes",
    )
    def corpus_source() -> dg.ObserveResult:
        version = corpus_hash(load_configured_corpus(settings.corpus))
        return dg.ObserveResult(data_version=dg.DataVersion(version))

    return [model_folder, corpus_source]
