"""Probes learn a planted signal and not shuffled labels; batched training (seeds and configs with
their own learning rate, weight decay, epochs, minibatch order and early stopping) equals training
one replica at a time; the batched optimizer is torch's AdamW per replica."""

import numpy as np
import pytest
import torch

from proj_assets.probes.probe_models import ProbeInputs, init_params, logits
from proj_assets.probes.probe_types import PROBE_TYPES
from proj_assets.probes.references import shuffled_labels
from proj_assets.probes.trainer import (
    BatchedAdamW,
    TrainParams,
    predict,
    replica_metrics,
    train_one_at_a_time,
    train_replicas,
)

N_TRAIN, N_VAL, N_TEST, T, D = 300, 100, 300, 6, 12
HP = TrainParams(
    learning_rate=0.05, weight_decay=0.0, epochs=60, batch_size=128, n_heads=2, patience=60
)


def planted(probe_type: str, seed: int = 0):
    """Labels carried by one token's direction (token probes, pooled probes) or by position (baseline)."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL + N_TEST
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
    inputs = ProbeInputs.from_padded(
        *(torch.from_numpy(a) for a in (position, pooled, tokens, mask))
    )
    cuts = np.cumsum([0, N_TRAIN, N_VAL, N_TEST])
    parts = [inputs.rows(torch.arange(a, b)) for a, b in zip(cuts[:-1], cuts[1:], strict=False)]
    return (*parts, *(y[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=False)))


@pytest.mark.parametrize("probe_type", PROBE_TYPES)
def test_probe_learns_planted_signal_and_not_shuffled_labels(probe_type):
    train, val, test, y_tr, y_val, y_te = planted(probe_type)
    seeds = [1, 2, 3]
    labels = np.concatenate([np.tile(y_tr, (3, 1)), shuffled_labels(y_tr, seeds)])
    val_labels = np.concatenate([np.tile(y_val, (3, 1)), shuffled_labels(y_val, seeds)])
    params = train_replicas(probe_type, train, labels, seeds + seeds, HP, val, val_labels)
    metrics = replica_metrics(y_te, predict(probe_type, params, test))
    real = np.mean([m["pr_auc"] for m in metrics[:3]])
    control = np.mean([m["pr_auc"] for m in metrics[3:]])
    base = metrics[0]["base_rate"]
    assert real > base + 0.25, (probe_type, real, base)
    assert abs(control - base) < 0.12, (probe_type, control, base)


@pytest.mark.parametrize("probe_type", PROBE_TYPES)
def test_batched_and_looped_training_agree_per_replica(probe_type):
    """Minibatches smaller than the data (each replica its own order), per-replica learning rate,
    weight decay and epochs, and early stopping on validation: batched == one at a time."""
    train, val, test, y_tr, y_val, y_te = planted(probe_type, seed=5)
    seeds = [11, 12, 13, 14]
    hp = TrainParams(
        [0.05, 0.01, 0.05, 0.2], [0.0, 0.01, 0.1, 0.0], [8, 12, 5, 12], 64, 2, patience=3
    )
    labels, val_labels = np.tile(y_tr, (4, 1)), np.tile(y_val, (4, 1))
    batched_params = train_replicas(probe_type, train, labels, seeds, hp, val, val_labels)
    looped_params = train_one_at_a_time(probe_type, train, labels, seeds, hp, val, val_labels)
    batched = predict(probe_type, batched_params, test)
    looped = np.concatenate([predict(probe_type, p, test) for p in looped_params])
    np.testing.assert_allclose(batched, looped, atol=1e-5)
    assert batched_params["epochs_run"].tolist() == [p["epochs_run"].item() for p in looped_params]
    assert batched_params["epochs_run"][2] == 5 and not np.allclose(batched[0], batched[2])
    for a, b in zip(replica_metrics(y_te, batched), replica_metrics(y_te, looped), strict=False):
        assert a["pr_auc"] == pytest.approx(b["pr_auc"], abs=1e-6)


def test_early_stopping_stops_when_validation_stops_improving():
    train, val, _test, y_tr, y_val, _ = planted("linear_probe")
    noise = np.random.default_rng(0).permutation(
        y_val
    )  # validation labels unrelated to the features
    hp = TrainParams(0.2, 0.0, 200, 512, patience=5)
    params = train_replicas("linear_probe", train, y_tr[None], [1], hp, val, noise[None])
    assert params["epochs_run"].item() < 100


def test_batched_adamw_equals_torch_adamw_per_replica():
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), (torch.rand(64) < 0.4).float()
    lrs, wds = [0.03, 0.1], [0.0, 0.05]
    params = init_params("linear_probe", [7, 8], 5, 1)
    ours = BatchedAdamW(list(params.values()), torch.tensor(lrs), torch.tensor(wds))
    refs = [
        {k: v[r : r + 1].detach().clone().requires_grad_() for k, v in params.items()}
        for r in range(2)
    ]
    opts = [
        torch.optim.AdamW(ref.values(), lr=lr, weight_decay=wd)
        for ref, lr, wd in zip(refs, lrs, wds, strict=False)
    ]
    inputs = ProbeInputs(torch.zeros(64, 1), pooled=x)
    for _ in range(20):
        torch.nn.functional.binary_cross_entropy_with_logits(
            logits("linear_probe", params, inputs), y.expand(2, -1), reduction="none"
        ).mean(1).sum().backward()
        ours.step(torch.ones(2))
        for ref, opt in zip(refs, opts, strict=False):
            torch.nn.functional.binary_cross_entropy_with_logits(
                logits("linear_probe", ref, inputs)[0], y
            ).backward()
            opt.step()
            opt.zero_grad()
    for r in range(2):
        torch.testing.assert_close(
            params["w"][r : r + 1].detach(), refs[r]["w"].detach(), rtol=1e-5, atol=1e-6
        )


def test_positives_are_weighted_by_class_imbalance():
    """A rare class still gets scores above the base rate: with 5% positives an unweighted probe
    at small lr mostly learns the prior; the weighted loss balances the gradient."""
    train, val, test, y_tr, y_val, y_te = planted("linear_probe", seed=2)
    keep = torch.from_numpy(np.flatnonzero((y_tr == 0) | (np.arange(len(y_tr)) % 6 == 0)))
    params = train_replicas(
        "linear_probe",
        train.rows(keep),
        y_tr[keep.numpy()][None],
        [3],
        TrainParams(0.05, 0.0, 40, 512, patience=40),
    )
    probs = predict("linear_probe", params, test)[0]
    assert probs[y_te == 1].mean() > 0.5 > probs[y_te == 0].mean()


def test_labels_must_match_replicas():
    train, _val, _test, y_tr, _, _ = planted("linear_probe")
    with pytest.raises(ValueError, match="labels shape"):
        train_replicas("linear_probe", train, np.tile(y_tr, (2, 1)), [1, 2, 3], HP)
