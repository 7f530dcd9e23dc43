"""Stable content hashes (pure: no dagster import, so core modules can use them)."""

import hashlib
import json
from pathlib import Path


def canonical_hash(spec: object, length: int = 16) -> str:
    """A stable hash of any JSON-serialisable spec (keys sorted, no whitespace)."""
    payload = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
