"""Artifact store for non-tabular outputs (checkpoints, activation caches, plots).

Writes are atomic (temp name in the same folder, then rename), so a crash never leaves a
half-written artifact under its final name. Shareable artifacts live at content-addressed paths:
`<root>/<kind>/<hash of their defining inputs>/`, so identical inputs reuse one copy.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from proj_resources.hashing import canonical_hash, sha256_file


def dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class ArtifactStore(dg.ConfigurableResource):
    """Root folder of file artifacts."""

    root: str

    def path(self, *parts: str) -> Path:
        return Path(self.root, *parts)

    def content_path(self, kind: str, spec: object) -> Path:
        """Where the artifact defined by `spec` lives; the same spec always maps here."""
        return self.path(kind, canonical_hash(spec))

    def write_bytes(self, relative: str, data: bytes) -> Path:
        """Atomically write one file under the root and return its final path."""
        final = self.path(relative)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return final

    @contextlib.contextmanager
    def atomic_dir(self, final: Path) -> Iterator[Path]:
        """Yield a temp folder beside `final`; on success it replaces `final` in one rename.

        On error the temp folder is removed and `final` is untouched.
        """
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
        try:
            yield tmp
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def describe(self, path: Path) -> dict:
        """Metadata for the UI: path, size and (for a file) its sha256."""
        meta = {"path": dg.MetadataValue.path(str(path)), "bytes": dir_bytes(path)}
        if path.is_file():
            meta["sha256"] = sha256_file(path)
        return meta
