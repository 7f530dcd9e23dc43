"""Per-sentence pooling over packed tokens, with hand-written backward passes.

`values` is [tokens, C] (C = replicas x heads), `segment` [tokens] the sentence of each token
(sorted, every sentence at least one token). Autograd's generic backward of `scatter_reduce` and of
the composed softmax allocates several token-sized tensors per op; these backward passes compute
the same gradients with the fewest token-sized passes (the batched token probes spend most of
their time here at research sizes: [tokens, replicas x heads] float32 tensors). Both are checked
against the autograd composition in float64 (proj_tests/probes/test_segment_ops.py).
"""

import torch


class _SegmentMax(torch.autograd.Function):
    """max over each sentence's tokens [n, C]; the gradient goes to the maximal token, split evenly
    among exact ties (as torch's amax does)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, segment: torch.Tensor, n: int) -> torch.Tensor:
        pooled = values.new_zeros(n, values.shape[1]).scatter_reduce_(
            0, segment[:, None].expand_as(values), values, "amax", include_self=False
        )
        ctx.save_for_backward(values, segment, pooled)
        return pooled

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        values, segment, pooled = ctx.saved_tensors
        hit = (values == pooled.index_select(0, segment)).to(values.dtype)
        ties = torch.zeros_like(pooled).index_add_(0, segment, hit)
        return hit.mul_((grad / ties).index_select(0, segment)), None, None


class _SegmentSoftmaxPool(torch.autograd.Function):
    """sum over each sentence's tokens of softmax(scores) * values [n, C] (softmax within the sentence)."""

    @staticmethod
    def forward(
        ctx, scores: torch.Tensor, values: torch.Tensor, segment: torch.Tensor, n: int
    ) -> torch.Tensor:
        peak = scores.new_full((n, scores.shape[1]), float("-inf")).scatter_reduce_(
            0, segment[:, None].expand_as(scores), scores, "amax", include_self=True
        )
        weights = (scores - peak.index_select(0, segment)).exp_()
        total = torch.zeros_like(peak).index_add_(0, segment, weights)
        pooled = torch.zeros_like(peak).index_add_(0, segment, weights * values).div_(total)
        ctx.save_for_backward(weights, values, segment, total, pooled)
        return pooled

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # pooled = A / Z with A = sum w v, Z = sum w, w = exp(s - peak): per token t of sentence i,
        # d/dv_t = w_t g_i / Z_i and d/ds_t = w_t (v_t - pooled_i) g_i / Z_i (the peak cancels)
        weights, values, segment, total, pooled = ctx.saved_tensors
        grad_values = (grad / total).index_select(0, segment).mul_(weights)
        grad_scores = (values - pooled.index_select(0, segment)).mul_(grad_values)
        return grad_scores, grad_values, None, None


def segment_max(values: torch.Tensor, segment: torch.Tensor, n: int) -> torch.Tensor:
    return _SegmentMax.apply(values, segment, n)


def segment_softmax_pool(
    scores: torch.Tensor, values: torch.Tensor, segment: torch.Tensor, n: int
) -> torch.Tensor:
    return _SegmentSoftmaxPool.apply(scores, values, segment, n)
