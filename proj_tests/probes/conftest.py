"""A tiny probes profile (3 problems, a 1-config sweep) and its resources, all under tmp_path."""

from pathlib import Path

import pytest
import yaml

from proj_assets.profiles import PROFILES_DIR

TINY_SPEC = {"name": "tiny", "factors": {"probe_type": ["linear_probe"], "layer": [2], "learning_rate": [0.05],
                                         "epochs": [10]},
             "stages": {"stage1_seeds": 2, "stage2_seeds": 3, "promote_top_k": 1}}


@pytest.fixture
def probes_profile(tmp_path: Path, monkeypatch):
    """Write a profile whose probes section is tiny and make it the active one; returns a function
    that rewrites the probes section (e.g. to point the corpus at a file)."""
    def write(**probes_overrides) -> Path:
        raw = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
        spec_path = tmp_path / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(TINY_SPEC))
        raw["probes"] = {"sweep_spec": str(spec_path), "corpus": {"n_groups": 3, "traces_per_group": 2, "seed": 3},
                         "model": {"max_tokens": 8, "batch_size": 32}, **probes_overrides}
        path = tmp_path / f"profile_{len(list(tmp_path.glob('profile_*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("PROJ_PROFILE", str(path))
        return path

    write()
    return write


@pytest.fixture
def probe_resources(tmp_path: Path) -> dict:
    from proj_assets.probes.settings import ModelSettings
    from proj_resources import ArtifactStore, Compute, Provenance, Warehouse, warehouse_io_manager
    from proj_resources.models import ModelSource

    database = str(tmp_path / "warehouse.duckdb")
    return {"io_manager": warehouse_io_manager(database), "warehouse": Warehouse(database=database),
            "artifacts": ArtifactStore(root=str(tmp_path / "artifacts")), "compute": Compute(threads=1),
            "provenance": Provenance(), "probe_model": ModelSource(path=ModelSettings().resolved_path())}
