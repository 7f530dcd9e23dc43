"""The hand-written backward passes of the per-sentence pooling equal autograd's (float64 gradcheck,
and the gradients of the autograd composition they replace), ties included."""

import torch

from proj_assets.probes.segment_ops import segment_max, segment_softmax_pool

LENGTHS = torch.tensor([3, 9, 1, 7, 10])
SEGMENT = torch.repeat_interleave(torch.arange(len(LENGTHS)), LENGTHS)


def _composed_max(values, segment, n):
    index = segment[:, None].expand_as(values)
    return values.new_zeros(n, values.shape[1]).scatter_reduce(
        0, index, values, "amax", include_self=False
    )


def _composed_softmax_pool(scores, values, segment, n):
    index = segment[:, None].expand_as(scores)
    peak = scores.new_full((n, scores.shape[1]), float("-inf")).scatter_reduce(
        0, index, scores.detach(), "amax", include_self=True
    )
    weights = torch.exp(scores - peak[segment])
    total = scores.new_zeros(n, scores.shape[1]).index_add(0, segment, weights)
    return scores.new_zeros(n, scores.shape[1]).index_add(0, segment, weights * values) / total


def _inputs(seed: int, *shape):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)
        for _ in range(2)
    ]


def test_segment_softmax_pool_gradients_equal_autograd():
    scores, values = _inputs(0, len(SEGMENT), 4)
    n = len(LENGTHS)
    assert torch.autograd.gradcheck(
        lambda s, v: segment_softmax_pool(s, v, SEGMENT, n), (scores, values)
    )
    torch.testing.assert_close(
        segment_softmax_pool(scores, values, SEGMENT, n),
        _composed_softmax_pool(scores, values, SEGMENT, n),
    )
    grad = torch.randn(n, 4, dtype=torch.float64)
    ours = torch.autograd.grad(
        segment_softmax_pool(scores * 30, values, SEGMENT, n), (scores, values), grad
    )
    reference = torch.autograd.grad(
        _composed_softmax_pool(scores * 30, values, SEGMENT, n), (scores, values), grad
    )
    for a, b in zip(
        ours, reference, strict=False
    ):  # large scores: the per-sentence peak keeps both finite and equal
        torch.testing.assert_close(a, b)


def test_segment_max_gradients_equal_autograd_with_ties_split_evenly():
    values, _ = _inputs(1, len(SEGMENT), 3)
    n = len(LENGTHS)
    assert torch.autograd.gradcheck(lambda v: segment_max(v, SEGMENT, n), (values,))
    tied = values.detach().clone()
    tied[4] = tied[5] = tied[3:12].max(0).values + 1  # two tokens of sentence 1 share its max
    tied.requires_grad_()
    grad = torch.randn(n, 3, dtype=torch.float64)
    (ours,) = torch.autograd.grad(segment_max(tied, SEGMENT, n), tied, grad)
    (reference,) = torch.autograd.grad(_composed_max(tied, SEGMENT, n), tied, grad)
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(ours[4], grad[1] / 2)
