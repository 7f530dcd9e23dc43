"""Token probes multiply in bfloat16 where the device does it natively: the choice is explicit and
resolvable, training in bfloat16 learns what float32 learns, and a fold's tokens are centred on the
training mean so large common offsets (LLM activations have them) are not rounded into the signal."""

import numpy as np
import pytest
import torch
from test_training import HP, planted

from proj_assets.probes.folds import build_fold, center_in_place
from proj_assets.probes.probe_models import ProbeInputs, init_params, logits, matmul_dtype
from proj_assets.probes.probe_types import TOKEN_PROBES
from proj_assets.probes.trainer import predict, replica_metrics, train_replicas


def test_the_dtype_setting_resolves_and_rejects_unknown_names():
    assert matmul_dtype("float32", "cpu") is torch.float32
    assert matmul_dtype("bfloat16", "cpu") is torch.bfloat16
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert matmul_dtype("auto", "cpu") is (torch.bfloat16 if native else torch.float32)
    with pytest.raises(ValueError, match="unknown matmul dtype 'half'"):
        matmul_dtype("half", "cpu")


@pytest.mark.parametrize("probe_type", TOKEN_PROBES)
def test_bfloat16_training_learns_what_float32_learns(probe_type):
    train, val, test, y_tr, y_va, y_te = planted(probe_type)
    seeds = [0, 1, 2]
    fits = {}
    for dtype in (torch.float32, torch.bfloat16):
        params = train_replicas(
            probe_type,
            train,
            np.tile(y_tr, (3, 1)),
            seeds,
            HP,
            val,
            np.tile(y_va, (3, 1)),
            matmul_dtype=dtype,
        )
        assert params["w"].dtype == torch.float32  # parameters and optimizer state stay float32
        fits[dtype] = [
            m["pr_auc"] for m in replica_metrics(y_te, predict(probe_type, params, test, dtype))
        ]
    assert min(fits[torch.bfloat16]) > y_te.mean() + 0.25  # the planted signal is learnt
    np.testing.assert_allclose(fits[torch.bfloat16], fits[torch.float32], atol=0.01)


def _offset_tokens(offset: float, n: int = 64, t: int = 5, d: int = 16):
    rng = np.random.default_rng(3)
    tokens = rng.normal(size=(n * t, d)).astype(np.float32)
    tokens[:, 0] += offset  # a "massive activation" dimension: a large common value
    return tokens.astype(np.float16), np.full(n, t)


@pytest.mark.parametrize("probe_type", TOKEN_PROBES)
def test_centred_tokens_give_bfloat16_logits_close_to_float32(probe_type):
    tokens, lengths = _offset_tokens(300.0)
    mean, std = tokens.astype(np.float32).mean(0), tokens.astype(np.float32).std(0) + 1e-6
    center_in_place(tokens, mean)
    assert np.abs(tokens.astype(np.float32).mean(0)).max() < 1e-2
    x = ProbeInputs(
        torch.zeros(len(lengths), 1),
        None,
        torch.from_numpy(tokens),
        torch.from_numpy(lengths),
        torch.from_numpy(std),
    )
    params = init_params(probe_type, [0, 1], tokens.shape[1], 2)
    with torch.no_grad():
        exact, narrow = (
            logits(probe_type, params, x, dtype) for dtype in (torch.float32, torch.bfloat16)
        )
    assert (exact - narrow).abs().max() < 0.05 * exact.abs().max()


def test_a_folds_tokens_are_centred_on_its_training_mean(tmp_path):
    from proj_assets.probes.activation_cache import CacheWriter, open_cache
    from proj_assets.probes.corpus import coerce_corpus, with_sentence_uid
    from proj_assets.probes.corpus_generator import generate_corpus

    corpus = with_sentence_uid(coerce_corpus(generate_corpus(3, 2, 0.0, seed=1), "generated"))
    (tmp_path / "cache").mkdir()
    writer = CacheWriter(
        tmp_path / "cache", {"test": True}, corpus["uid"].to_numpy(), np.full(corpus.height, 3), 4
    )
    rng = np.random.default_rng(0)
    for uid in corpus["uid"]:
        writer.put(uid, (rng.normal(size=(3, 4)) + 200.0).astype(np.float32))
    writer.close()
    array, index, _ = open_cache(tmp_path / "cache")
    data = build_fold(corpus, array, index, corpus["group_id"][0], pooling=None, need_tokens=True)
    training = torch.cat([data.train.tokens, data.val.tokens]).float()
    assert training.mean(0).abs().max() < 0.05  # was ~200 in the cache
    assert (
        data.test.tokens.float().mean().abs() < 5
    )  # the test part is centred on the training mean too
