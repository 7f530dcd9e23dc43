"""A fold's tokens cost one packed float16 copy: gathered from the cache file with positioned reads
(never through the memmap, whose touched pages would stay in the process's RSS), and minibatches
share them instead of copying them."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from proj_assets.probes import activation_cache
from proj_assets.probes.activation_cache import CacheWriter, cache_spec, gather_rows, open_cache
from proj_assets.probes.probe_models import ProbeInputs, init_params, logits

SPEC = cache_spec("m", "r", 3, "c", 16, "sentence", "t", "v1", 512)


def _cache(folder: Path, lengths: list[int], hidden: int, seed: int = 0) -> np.memmap:
    rng = np.random.default_rng(seed)
    writer = CacheWriter(folder, SPEC, np.arange(len(lengths)), np.asarray(lengths), hidden)
    for uid, n in enumerate(lengths):
        writer.put(uid, rng.standard_normal((n, hidden), dtype=np.float32))
    writer.close()
    return open_cache(folder)[0]


# unsorted, repeated, single rows and runs that cross sentence boundaries
ROWS = np.array([5, 6, 7, 8, 0, 1, 2, 2, 19, 11, 12, 3, 4, 9])


def test_gathered_rows_equal_memmap_indexing_one_read_per_run(tmp_path, monkeypatch):
    array = _cache(tmp_path, [3, 5, 4, 8], hidden=6)
    calls = []
    preadv = os.preadv
    monkeypatch.setattr(
        os, "preadv", lambda fd, bufs, pos: calls.append(pos) or preadv(fd, bufs, pos)
    )
    got = gather_rows(array, ROWS)
    assert type(got) is np.ndarray and got.dtype == np.float16
    np.testing.assert_array_equal(got, np.asarray(array[ROWS]))
    assert len(calls) == 7  # runs 5-8, 0-2, 2, 19, 11-12, 3-4, 9
    assert gather_rows(array, ROWS[:0]).shape == (0, 6)
    with pytest.raises(IndexError):
        gather_rows(array, np.array([0, 20]))


def test_short_reads_are_continued_and_a_truncated_file_is_an_error(tmp_path, monkeypatch):
    array = _cache(tmp_path, [10, 10], hidden=8)
    preadv = os.preadv
    monkeypatch.setattr(
        os, "preadv", lambda fd, bufs, pos: preadv(fd, [bufs[0][:5]], pos)
    )  # 5 bytes at a time
    np.testing.assert_array_equal(gather_rows(array, ROWS), np.asarray(array[ROWS]))
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, pos: 0)
    with pytest.raises(activation_cache.CacheError, match="ended before"):
        gather_rows(array, ROWS)


def test_arrays_that_are_not_a_whole_cache_memmap_are_indexed(tmp_path):
    array = _cache(tmp_path, [10, 10], hidden=4)
    plain = np.asarray(array, dtype=np.float32)
    np.testing.assert_array_equal(gather_rows(plain, ROWS), plain[ROWS].astype(np.float16))
    view = array[
        3:
    ]  # a memmap view: its own .offset is the parent's, so it must not be read as a whole file
    np.testing.assert_array_equal(gather_rows(view, ROWS[:5]), np.asarray(array[3:][ROWS[:5]]))


def _rss_file_mb() -> float | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    line = next((ln for ln in status.splitlines() if ln.startswith("RssFile:")), None)
    return None if line is None else int(line.split()[1]) / 1024


def test_gathering_keeps_no_page_of_the_file_resident(tmp_path):
    """Indexing the memmap maps every page it reads (file-backed RSS, a second copy of the slice);
    the positioned reads map none. Checked against indexing, so it cannot pass vacuously."""
    if _rss_file_mb() is None:
        pytest.skip("needs /proc/self/status (Linux)")
    array = _cache(tmp_path, [4096] * 4, hidden=1024)  # 32 MB of float16
    rows = np.arange(array.shape[0])[::-1].copy()
    before = _rss_file_mb()
    gathered = gather_rows(array, rows)
    read_growth = _rss_file_mb() - before
    before = _rss_file_mb()
    indexed = np.asarray(array[rows])
    index_growth = _rss_file_mb() - before
    np.testing.assert_array_equal(gathered, indexed)
    assert index_growth > 24, (
        f"indexing the memmap grew RssFile by only {index_growth:.1f} MB: the check is blind here"
    )
    assert read_growth < 4, f"gather_rows grew RssFile by {read_growth:.1f} MB"


@pytest.mark.parametrize("probe_type", ["attention_probe", "multimax_probe"])
def test_minibatches_share_the_tokens_and_give_the_same_logits(probe_type):
    rng = np.random.default_rng(1)
    lengths = torch.from_numpy(rng.integers(1, 7, size=40))
    tokens = torch.from_numpy(rng.standard_normal((int(lengths.sum()), 5)).astype(np.float16))
    full = ProbeInputs(torch.zeros(40, 2), None, tokens, lengths, torch.full((5,), 1.5))
    params = init_params(probe_type, [3, 4], 5, 2)
    idx = torch.from_numpy(rng.permutation(40)[:25])
    sub = full.rows(idx).rows(torch.arange(24, -1, -2))  # a minibatch of a minibatch
    assert sub.tokens.data_ptr() == tokens.data_ptr()  # no copy of the tokens
    picked = idx[torch.arange(24, -1, -2)]
    starts = torch.cumsum(lengths, 0) - lengths
    own = torch.cat(
        [
            tokens[s : s + n]
            for s, n in zip(starts[picked].tolist(), lengths[picked].tolist(), strict=False)
        ]
    )
    packed = ProbeInputs(torch.zeros(len(picked), 2), None, own, lengths[picked], full.token_std)
    torch.testing.assert_close(logits(probe_type, params, sub), logits(probe_type, params, packed))
    torch.testing.assert_close(
        logits(probe_type, params, full)[:, picked], logits(probe_type, params, packed)
    )


@pytest.mark.parametrize("probe_type", ["attention_probe", "multimax_probe"])
def test_a_kept_forward_and_a_recomputed_one_give_the_same_gradients(probe_type, monkeypatch):
    """Chunks under probe_models.KEEP_BYTES keep their forward for backward, larger ones are
    recomputed (checkpointed); a chunk that crosses the line trains the same either way."""
    from proj_assets.probes import probe_models

    rng = np.random.default_rng(2)
    lengths = torch.from_numpy(rng.integers(1, 7, size=30))
    tokens = torch.from_numpy(rng.standard_normal((int(lengths.sum()), 5)).astype(np.float16))
    inputs = ProbeInputs(torch.zeros(30, 2), None, tokens, lengths, torch.full((5,), 1.5))
    target = torch.from_numpy(rng.integers(0, 2, size=(3, 30)).astype(np.float32))
    grads, calls = [], []
    real_checkpoint = probe_models.checkpoint
    monkeypatch.setattr(
        probe_models, "checkpoint", lambda *a, **k: calls.append(1) or real_checkpoint(*a, **k)
    )
    for keep, checkpointed in ((0, 1), (2**40, 0)):  # always recompute, never recompute
        monkeypatch.setattr(probe_models, "KEEP_BYTES", keep)
        calls.clear()
        params = {
            k: v.detach().requires_grad_()
            for k, v in init_params(probe_type, [5, 6, 7], 5, 2).items()
        }
        torch.nn.functional.binary_cross_entropy_with_logits(
            logits(probe_type, params, inputs), target
        ).backward()
        assert len(calls) == checkpointed
        grads.append(params["w"].grad)
    torch.testing.assert_close(grads[0], grads[1])
