"""Probes learn a planted signal, stay near the base rate on shuffled labels, and batched training
equals training one seed at a time."""

import numpy as np
import pytest
import torch

from proj_assets.probes.probe_models import ProbeInputs
from proj_assets.probes.trainer import (TrainParams, predict, replica_metrics, shuffled_labels, train_one_at_a_time,
                                        train_replicas)
from proj_assets.probes.probe_types import PROBE_TYPES

N_TRAIN, N_TEST, T, D = 300, 300, 6, 12
HP = TrainParams(learning_rate=0.05, weight_decay=0.0, epochs=60, batch_size=128, n_heads=2)


def planted(probe_type: str, seed: int = 0):
    """Labels carried by one token's direction (token probes, pooled probes) or by position (baseline)."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    y = (rng.random(n) < 0.3).astype(np.int64)
    tokens = rng.normal(size=(n, T, D)).astype(np.float32)
    where = rng.integers(0, T, size=n)
    tokens[np.arange(n), where, 0] += 3.0 * y  # one token per positive sentence carries the signal
    mask = np.ones((n, T), dtype=bool)
    position = rng.normal(size=(n, 3)).astype(np.float32)
    if probe_type == "position_baseline":
        position[:, 0] += 2.0 * y
    pooled = tokens.mean(1)
    pooled = (pooled - pooled.mean(0)) / pooled.std(0)
    inputs = ProbeInputs(*(torch.from_numpy(a) for a in (position, pooled, tokens, mask)))
    idx_tr, idx_te = torch.arange(N_TRAIN), torch.arange(N_TRAIN, n)
    return inputs.rows(idx_tr), inputs.rows(idx_te), y[:N_TRAIN], y[N_TRAIN:]


@pytest.mark.parametrize("probe_type", PROBE_TYPES)
def test_probe_learns_planted_signal_and_not_shuffled_labels(probe_type):
    train, test, y_tr, y_te = planted(probe_type)
    seeds = [1, 2, 3]
    labels = np.concatenate([np.tile(y_tr, (3, 1)), shuffled_labels(y_tr, seeds)])
    params = train_replicas(probe_type, train, labels, seeds + seeds, HP, order_seed=0)
    metrics = replica_metrics(y_te, predict(probe_type, params, test))
    real = np.mean([m["pr_auc"] for m in metrics[:3]])
    control = np.mean([m["pr_auc"] for m in metrics[3:]])
    base = metrics[0]["base_rate"]
    assert real > base + 0.3, (probe_type, real, base)
    assert abs(control - base) < 0.12, (probe_type, control, base)


@pytest.mark.parametrize("probe_type", PROBE_TYPES)
def test_batched_and_looped_training_agree_per_seed(probe_type):
    train, test, y_tr, y_te = planted(probe_type, seed=5)
    seeds = [11, 12, 13, 14]
    labels = np.tile(y_tr, (4, 1))
    hp = TrainParams(0.05, 0.01, 8, 64, 2)
    batched = predict(probe_type, train_replicas(probe_type, train, labels, seeds, hp, order_seed=3), test)
    looped = np.concatenate([predict(probe_type, p, test)
                             for p in train_one_at_a_time(probe_type, train, labels, seeds, hp, order_seed=3)])
    np.testing.assert_allclose(batched, looped, atol=1e-5)
    assert not np.allclose(batched[0], batched[1])  # seeds really differ
    for a, b in zip(replica_metrics(y_te, batched), replica_metrics(y_te, looped)):
        assert a["pr_auc"] == pytest.approx(b["pr_auc"], abs=1e-6)


def test_labels_must_match_replicas():
    train, _test, y_tr, _ = planted("linear_probe")
    with pytest.raises(ValueError, match="labels shape"):
        train_replicas("linear_probe", train, np.tile(y_tr, (2, 1)), [1, 2, 3], HP, 0)
