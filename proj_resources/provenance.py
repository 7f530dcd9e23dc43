"""Provenance: what code, data and parameters produced a row (git SHA, versions, run, seed)."""

import functools
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import dagster as dg
import polars as pl

from proj_resources.fingerprints import stamp_inputs
from proj_resources.hashing import canonical_hash

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TRACKED_PACKAGES = (
    "dagster",
    "polars",
    "duckdb",
    "torch",
    "transformers",
    "peft",
    "optuna",
    "scikit-learn",
)


@functools.cache
def git_sha(root: Path = PROJECT_ROOT) -> str:
    """HEAD's SHA, with `-dirty` when the tree has uncommitted changes; `unknown` outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


@functools.cache
def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


class Provenance(dg.ConfigurableResource):
    """Stamps generated rows and materializations with where they came from."""

    code_version: str = "0.1.0"

    def record(
        self,
        run_id: str,
        seed: int | None,
        params: object,
        model_id: str | None = None,
        model_revision: str | None = None,
    ) -> dict:
        return {
            "git_sha": git_sha(),
            "code_version": self.code_version,
            "run_id": run_id,
            "seed": seed,
            "params_hash": canonical_hash(params),
            "model_id": model_id,
            "model_revision": model_revision,
        }

    def stamp(
        self,
        df: pl.DataFrame,
        run_id: str,
        seed: int | None,
        params: object,
        model_id: str | None = None,
        model_revision: str | None = None,
        inputs: Mapping[str, str] | None = None,
    ) -> pl.DataFrame:
        """`df` with one provenance column per field of `record`, equal on every row; with
        `inputs` (input name -> version) also the input fingerprint readers select current rows
        by (`proj_resources.fingerprints`)."""
        rec = self.record(run_id, seed, params, model_id, model_revision)
        out = df.with_columns(
            [pl.lit(v, dtype=pl.Int64 if k == "seed" else pl.Utf8).alias(k) for k, v in rec.items()]
        )
        return out if inputs is None else stamp_inputs(out, inputs)

    def metadata(self) -> dict:
        return {
            "git_sha": git_sha(),
            "code_version": self.code_version,
            "package_versions": dg.MetadataValue.json(package_versions()),
        }
