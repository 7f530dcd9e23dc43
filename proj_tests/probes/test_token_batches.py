"""Token-probe minibatches for a GPU: one precomputed index and one gather per epoch into a buffer,
the same logits as the per-minibatch path, and an operator count per epoch that does not grow
with the number of sentences (it did: one copy per sentence run)."""

import numpy as np
import pytest
import torch

from proj_assets.probes.probe_models import ProbeInputs, init_params, logits
from proj_assets.probes.token_batches import (
    epoch_buffer,
    epoch_tokens,
    minibatch_logits,
    staged_inputs,
    step_plan,
)
from proj_assets.probes.trainer import TrainParams, train_replicas


def _inputs(n: int, dim: int = 6, seed: int = 0) -> ProbeInputs:
    rng = np.random.default_rng(seed)
    lengths = torch.from_numpy(rng.integers(1, 6, size=n))
    tokens = torch.from_numpy(rng.standard_normal((int(lengths.sum()), dim)).astype(np.float16))
    return ProbeInputs(torch.zeros(n, 2), None, tokens, lengths, torch.full((dim,), 1.5))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_the_epoch_buffer_holds_each_minibatchs_tokens_in_order(dtype):
    inputs = _inputs(11)
    lengths = inputs.lengths.numpy()
    starts = np.cumsum(lengths) - lengths
    order = np.random.default_rng(3).permutation(11)
    buffer = epoch_buffer(inputs.tokens, int(lengths.sum()) + 7, dtype)  # room to spare
    assert buffer.dtype == (torch.bfloat16 if dtype == torch.bfloat16 else torch.float16)
    index = epoch_tokens(inputs.tokens, starts, lengths, order, 4, buffer)
    assert index.sizes.tolist() == [4, 4, 3] and index.token_bounds[-1] == lengths.sum()
    assert index.tokens.data_ptr() == buffer.data_ptr()  # the buffer itself, not a copy
    for b in range(3):
        sentences = order[4 * b : 4 * b + 4]
        lo, hi = index.token_bounds[b], index.token_bounds[b + 1]
        expected = np.concatenate([np.arange(starts[s], starts[s] + lengths[s]) for s in sentences])
        torch.testing.assert_close(
            index.tokens[lo:hi], inputs.tokens[expected].to(buffer.dtype), rtol=0, atol=0
        )
        np.testing.assert_array_equal(
            index.segment[lo:hi].numpy(), np.repeat(np.arange(len(sentences)), lengths[sentences])
        )


def test_the_cpu_conversion_equals_torchs_cast_in_place_and_across_step_ends(monkeypatch):
    from proj_assets.probes import token_batches

    monkeypatch.setattr(token_batches, "CONVERT_ROWS", 4)  # 11 rows: steps of 4, 4 and 3
    tokens = (torch.randn(11, 5, dtype=torch.float64) * 1e3).to(torch.float16)
    tokens[0, 0], tokens[1, 1] = 6e-8, float("inf")  # a float16 subnormal, an infinity
    expected = tokens.to(torch.bfloat16)
    out = torch.empty(11, 5, dtype=torch.bfloat16)
    assert token_batches.convert_into(out, tokens) is out
    assert torch.equal(out, expected)
    shared = tokens.clone().view(torch.bfloat16)  # the float16 bits, read as bfloat16
    assert not torch.equal(shared, expected)
    token_batches.convert_into(shared, shared.view(torch.float16))  # converted where they lie
    assert torch.equal(shared, expected)


def test_the_epoch_buffer_takes_float16_tokens_only():
    with pytest.raises(ValueError, match="float16 tokens"):
        epoch_buffer(torch.zeros(3, 2), 3, torch.bfloat16)


def test_staged_validation_tokens_give_the_same_logits_and_too_many_are_left_alone():
    val = _inputs(9, seed=5)
    params = init_params("attention_probe", [1, 2], 6, 2)
    roomy = epoch_buffer(val.tokens, val.tokens.shape[0] + 3, torch.bfloat16)
    roomy.fill_(7.0)  # whatever an epoch left there
    staged = staged_inputs(val, roomy)
    assert staged.tokens.data_ptr() == roomy.data_ptr()
    torch.testing.assert_close(
        logits("attention_probe", params, staged, torch.bfloat16),
        logits("attention_probe", params, val, torch.bfloat16),
        rtol=0,
        atol=0,
    )
    small = epoch_buffer(val.tokens, val.tokens.shape[0] - 1, torch.bfloat16)
    assert staged_inputs(val, small) is val


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("probe_type", ["attention_probe", "multimax_probe"])
def test_a_gathered_minibatch_gives_the_logits_of_the_minibatch_itself(probe_type, dtype):
    inputs = _inputs(13)
    lengths = inputs.lengths.numpy()
    order = np.random.default_rng(4).permutation(13)
    buffer = epoch_buffer(inputs.tokens, int(lengths.sum()), dtype)
    index = epoch_tokens(inputs.tokens, np.cumsum(lengths) - lengths, lengths, order, 5, buffer)
    params = init_params(probe_type, [1, 2, 3], 6, 2)
    for b in range(3):
        minibatch = inputs.rows(torch.from_numpy(order[5 * b : 5 * b + 5]))
        torch.testing.assert_close(
            minibatch_logits(probe_type, params, inputs, index, b, dtype),
            logits(probe_type, params, minibatch, dtype),
        )


def test_the_step_plan_lists_every_replica_once_per_step_on_its_own_minibatch():
    visit = np.array([[0, 1, 2], [2, 1, 0], [0, 2, 1]])  # replica r's minibatch at each step
    replicas, plan = step_plan(visit, "cpu")
    for step, triples in enumerate(plan):
        seen = {int(r): b for b, lo, hi in triples for r in replicas[lo:hi]}
        assert seen == {r: int(visit[r, step]) for r in range(3)}
    assert [len(t) for t in plan] == [2, 2, 3]  # a minibatch two replicas share is computed once


def _ops_per_epoch(n: int, replicas: int) -> int:
    from torch.profiler import ProfilerActivity, profile

    inputs = _inputs(n, seed=1)
    labels = np.tile((np.arange(n) % 2).astype(np.float32), (replicas, 1))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_replicas(
            "multimax_probe",
            inputs,
            labels,
            list(range(replicas)),
            TrainParams(0.01, 0.0, 1, n // 4, 2),
        )
    return sum(e.count for e in prof.key_averages())


def test_an_epochs_operator_count_does_not_grow_with_sentences():
    small, large = (
        _ops_per_epoch(64, 8),
        _ops_per_epoch(1024, 8),
    )  # 4 minibatches each, same visiting orders
    assert small == large
