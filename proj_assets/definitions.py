"""The code location: every domain's definitions, built from one profile and merged.

Each domain folder exports one builder (`market.definitions.build_market`, ...) that returns its
whole surface (assets, checks, partitions, jobs, schedules, sensors and the resources only it
uses) from the profile it is given. This module adds what every domain shares (warehouse,
artifacts, compute, provenance, I/O managers, the executor) and merges them with
`Definitions.merge`: the root lists domains, not modules, and definitions for two profiles can
live in one process. Dagster loads the code location through `defs`, a `@dg.definitions`
function, so the active profile (PROJ_PROFILE, PROJ_DATA_DIR) is read when the location loads,
never at import.
"""

import warnings
from pathlib import Path

import dagster as dg

# Per-partition asset checks are a preview feature in 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from proj_assets.market.definitions import build_market
from proj_assets.platform.definitions import build_platform
from proj_assets.probes.definitions import build_probes
from proj_assets.profiles import Profile, data_dir, load_profile
from proj_assets.scaling.definitions import build_scaling
from proj_assets.sft.definitions import build_sft
from proj_assets.shared.compute_write import HANDOFF_IO_MANAGER, handoff_io_manager
from proj_assets.shared.executors import executor_for
from proj_assets.shared.gates import with_upstream_gates
from proj_assets.shared.jobs import require_jobs_select_assets
from proj_resources import (
    ArtifactStore,
    Compute,
    Provenance,
    Warehouse,
    warehouse_io_manager,
    warehouse_path,
)


def shared_resources(profile: Profile, root: Path) -> dict:
    """What every domain uses, for `profile`, with every output under `root`."""
    database = str(warehouse_path(profile.name, root))
    return {
        "io_manager": warehouse_io_manager(database),
        HANDOFF_IO_MANAGER: handoff_io_manager(root, profile.name),
        "warehouse": Warehouse(database=database),
        "artifacts": ArtifactStore(root=str(root / "artifacts")),
        "compute": Compute(**profile.compute.model_dump()),
        "provenance": Provenance(),
    }


def domain_definitions(profile: Profile, root: Path) -> list[dg.Definitions]:
    """Each domain's own definitions for `profile` (the platform layer last: it spans them)."""
    return [
        build_market(profile, root),
        build_scaling(profile, root),
        build_probes(profile, root),
        build_sft(profile, root),
        build_platform(profile),
    ]


def build_resources(profile: Profile, root: Path) -> dict:
    """Every resource of the code location for `profile` (the shared ones and each domain's)."""
    resources = shared_resources(profile, root)
    for domain in domain_definitions(profile, root):
        resources.update(domain.resources or {})
    return resources


def build_definitions(profile: Profile, root: Path) -> dg.Definitions:
    merged = with_upstream_gates(
        dg.Definitions.merge(
            *domain_definitions(profile, root),
            dg.Definitions(
                resources=shared_resources(profile, root), executor=executor_for()
            ),  # embedded: in-process; Celery workers when PROJ_CLUSTER=1
        )
    )
    require_jobs_select_assets(merged)
    return merged


@dg.definitions
def defs() -> dg.Definitions:
    """The code location for the active profile (PROJ_PROFILE) with outputs under PROJ_DATA_DIR."""
    return build_definitions(load_profile(), data_dir())
