"""The activations' boundary_tokens_within_share check: it fails (blocking) when more traces than
the profile allows have a token spanning two sentences, and names them; a cache written before
the counts existed fails instead of passing. The cache is faked: the counts come from
extraction.boundary_tokens (test_boundary_tokens.py covers them on real tokenizers)."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from definitions_helpers import checks_by_name, demo_profile

from proj_assets.probes import checks as probe_checks
from proj_assets.probes.settings import ProbesSettings


def _check(monkeypatch, meta: dict, max_share: float):
    settings = demo_profile().probes.model_dump()
    settings["model"]["max_boundary_trace_share"] = max_share
    monkeypatch.setattr(
        probe_checks, "activation_folders", lambda *a: {4: ({}, Path("/nonexistent/cache"))}
    )
    monkeypatch.setattr(probe_checks, "_unreadable", lambda folder, layer: None)
    monkeypatch.setattr(probe_checks, "open_cache", lambda folder: (None, None, meta))
    check = checks_by_name(probe_checks.probes_checks(ProbesSettings(**settings)))[
        "boundary_tokens_within_share"
    ]
    return check(corpus=pl.DataFrame(), artifacts=None, probe_model=None)


def _counts(per_trace: dict[str, int], traces: int) -> dict:
    return {
        "boundary_tokens": {
            "tokens": sum(per_trace.values()),
            "traces": traces,
            "traces_with_boundary_tokens": len(per_trace),
            "per_trace": per_trace,
        }
    }


def test_fails_above_the_profiles_share_and_names_the_traces(monkeypatch):
    result = _check(monkeypatch, _counts({"t7": 3, "t2": 1}, traces=10), max_share=0.1)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    assert meta["measured"] == pytest.approx(0.2) and meta["threshold"] == pytest.approx(0.1)
    assert "t7" in meta["offending_sample"] and "t2" in meta["offending_sample"]
    assert _check(monkeypatch, _counts({"t7": 3}, traces=10), max_share=0.1).passed
    assert _check(monkeypatch, _counts({}, traces=10), max_share=0.0).passed


def test_a_cache_without_counts_is_an_error(monkeypatch):
    with pytest.raises(ValueError, match="no boundary-token counts"):
        _check(monkeypatch, {}, max_share=0.5)
