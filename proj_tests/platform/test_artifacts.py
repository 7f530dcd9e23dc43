"""ArtifactStore: atomic writes leave no partial artifact; content addresses are stable."""

import os
from pathlib import Path

import pytest

from proj_resources import ArtifactStore
from proj_resources.hashing import canonical_hash, sha256_file


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(root=str(tmp_path / "artifacts"))


def _leftovers(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")
    )


def test_failing_atomic_dir_leaves_nothing(store):
    final = store.path("checkpoints", "run1")
    with pytest.raises(RuntimeError, match="boom"):
        with store.atomic_dir(final) as tmp:
            (tmp / "weights.bin").write_bytes(b"half")
            raise RuntimeError("boom")
    assert not final.exists()
    assert _leftovers(final.parent) == [] and list(final.parent.iterdir()) == []


def test_failing_atomic_dir_keeps_the_previous_version(store):
    final = store.path("checkpoints", "run1")
    with store.atomic_dir(final) as tmp:
        (tmp / "weights.bin").write_bytes(b"v1")
    with pytest.raises(RuntimeError):
        with store.atomic_dir(final) as tmp:
            (tmp / "weights.bin").write_bytes(b"v2-partial")
            raise RuntimeError("crash")
    assert (final / "weights.bin").read_bytes() == b"v1"
    assert _leftovers(final.parent) == []


def test_atomic_dir_success_replaces_the_whole_folder(store):
    final = store.path("cache", "x")
    with store.atomic_dir(final) as tmp:
        (tmp / "old.txt").write_text("old")
    with store.atomic_dir(final) as tmp:
        assert tmp != final and tmp.parent == final.parent
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert _leftovers(final.parent) == []


def test_write_bytes_replaces_atomically(store, monkeypatch):
    path = store.write_bytes("plots/a.png", b"first")
    assert path == store.path("plots/a.png") and path.read_bytes() == b"first"
    assert store.write_bytes("plots/a.png", b"second").read_bytes() == b"second"
    assert _leftovers(path.parent) == []

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        store.write_bytes("plots/a.png", b"third")
    assert path.read_bytes() == b"second"  # the old version is intact
    assert _leftovers(path.parent) == []  # and the temp file is gone


def test_content_path_stable_and_distinct(store):
    spec = {"model": "tiny", "layers": [1, 2], "seed": 3}
    same = {"seed": 3, "layers": [1, 2], "model": "tiny"}  # key order does not matter
    assert store.content_path("acts", spec) == store.content_path("acts", same)
    assert store.content_path("acts", spec) == store.path("acts", canonical_hash(spec))
    assert store.content_path("acts", spec) != store.content_path("acts", {**spec, "seed": 4})
    assert store.content_path("acts", spec) != store.content_path("ckpt", spec)
    assert len(canonical_hash(spec)) == 16


def test_describe_reports_path_bytes_and_hash(store):
    path = store.write_bytes("x/data.bin", b"12345")
    meta = store.describe(path)
    assert meta["bytes"] == 5 and meta["sha256"] == sha256_file(path)
    assert meta["path"].value == str(path)
    assert store.describe(path.parent)["bytes"] == 5 and "sha256" not in store.describe(path.parent)
