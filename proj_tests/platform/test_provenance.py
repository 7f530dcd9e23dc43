"""Provenance: every generated row carries code, run, seed, parameters and model identity."""

import re

import polars as pl

from proj_resources import Provenance
from proj_resources.hashing import canonical_hash
from proj_resources.provenance import git_sha

FIELDS = ["git_sha", "code_version", "run_id", "seed", "params_hash", "model_id", "model_revision"]


def test_stamp_adds_every_field_to_every_row():
    df = pl.DataFrame({"x": [1, 2, 3]})
    params = {"lr": 0.01, "layers": 2}
    out = Provenance(code_version="9.9").stamp(
        df, "run-abc", seed=42, params=params, model_id="tiny-llama", model_revision="r1"
    )
    assert out.columns == ["x", *FIELDS]
    assert out.height == 3 and out["x"].to_list() == [1, 2, 3]
    for row in out.iter_rows(named=True):
        assert row["git_sha"] == git_sha() and row["code_version"] == "9.9"
        assert row["run_id"] == "run-abc" and row["seed"] == 42
        assert row["params_hash"] == canonical_hash(params)
        assert row["model_id"] == "tiny-llama" and row["model_revision"] == "r1"
    assert out.schema["seed"] == pl.Int64 and out.schema["model_id"] == pl.Utf8


def test_stamp_without_seed_or_model_keeps_typed_null_columns():
    out = Provenance().stamp(pl.DataFrame({"x": [1.0]}), "r", seed=None, params={})
    assert out["seed"].to_list() == [None] and out.schema["seed"] == pl.Int64
    assert out["model_id"].to_list() == [None] and out.schema["model_revision"] == pl.Utf8


def test_params_hash_follows_the_parameters():
    prov = Provenance()
    df = pl.DataFrame({"x": [1]})
    a = prov.stamp(df, "r", 1, {"a": 1, "b": 2})["params_hash"][0]
    assert a == prov.stamp(df, "r", 1, {"b": 2, "a": 1})["params_hash"][0]
    assert a != prov.stamp(df, "r", 1, {"a": 1, "b": 3})["params_hash"][0]


def test_git_sha_identifies_the_checkout():
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", git_sha())


def test_metadata_lists_versions():
    meta = Provenance().metadata()
    assert meta["git_sha"] == git_sha()
    assert "dagster" in meta["package_versions"].value
