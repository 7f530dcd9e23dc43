"""Token-probe minibatches shaped for a GPU: a fixed number of tensor operations per minibatch.

Once per epoch, on the host, the epoch's sentence order becomes one token index (the token rows
of every sentence, minibatch after minibatch) and one segment index (each token's sentence within
its minibatch), moved to the device in one transfer each, with the token and sentence bounds of
every minibatch kept on the host. The index is then spent at once: one gather per minibatch copies
the epoch's tokens, in that order and in the matmul dtype, into a buffer allocated once per
training run (`epoch_buffer`). Each replica visits the minibatches in its own seeded order, so a
minibatch is computed at several steps of an epoch (for the replicas on it at each); gathering and
converting it once per epoch instead of at every step was most of a research-shaped epoch on the
CPU (docs/benchmarks.md, Issue 21). Per step, for each minibatch some replica is on (the replica
indices were listed up front too), the minibatch is one slice of the buffer and of the segment
index, one matmul for all its replicas at once and the pooling: the same operations whatever the
number of sentences or replicas, no copy per sentence and no host sync inside the epoch. Its
backward runs at once, so only one minibatch's activations are alive and nothing is recomputed
(the CPU-only `KEEP_BYTES` checkpointing of probe_models does not apply to training).
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from proj_assets.probes.probe_models import ProbeInputs, chunk_pooled


@dataclass(frozen=True)
class EpochTokens:
    tokens: torch.Tensor  # [epoch tokens, D] the sentences' tokens in the epoch's order
    segment: torch.Tensor  # [epoch tokens] each token's sentence position within its minibatch
    token_bounds: np.ndarray  # host [n_batches + 1]: each minibatch's slice of `tokens`
    sizes: np.ndarray  # host [n_batches]: sentences per minibatch


# rows per float32 step of a CPU float16 -> bfloat16 conversion (a 6 MB scratch at 1536 dims)
CONVERT_ROWS = 1024


def convert_into(out: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """`out.copy_(tokens)` (`out` may be `tokens`' own bytes, viewed in its dtype). On a CPU a
    float16 -> bfloat16 cast goes through float32, `CONVERT_ROWS` rows at a time: torch's direct
    cast is 2.3x slower on this machine (230 vs 100 ms for a research-sized epoch), while both
    halves through float32 are vectorised. One kernel on a GPU."""
    if out.device.type != "cpu" or out.dtype != torch.bfloat16:
        return out.copy_(tokens)
    scratch = torch.empty(min(CONVERT_ROWS, len(out)), out.shape[1])
    for lo in range(0, len(out), CONVERT_ROWS):
        part = scratch[: min(CONVERT_ROWS, len(out) - lo)]
        out[lo : lo + len(part)].copy_(part.copy_(tokens[lo : lo + len(part)]))
    return out


def epoch_buffer(tokens: torch.Tensor, n_tokens: int, dtype: torch.dtype) -> torch.Tensor:
    """Room for an epoch's `n_tokens` float16 tokens, reused by every epoch of a run: in the
    matmul `dtype` when it is 2 bytes wide too (bfloat16: converted once per epoch, not per
    step), else float16 (a float32 copy would double the fold's memory)."""
    if tokens.dtype != torch.float16:
        raise ValueError(f"token probes take float16 tokens, not {tokens.dtype}")
    keep = dtype if torch.empty(0, dtype=dtype).element_size() == 2 else tokens.dtype
    return torch.empty(n_tokens, tokens.shape[1], dtype=keep, device=tokens.device)


def epoch_tokens(
    tokens: torch.Tensor,
    starts: np.ndarray,
    lengths: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    out: torch.Tensor,
) -> EpochTokens:
    """The epoch whose sentences come in `order`, cut into minibatches of `batch_size`, its tokens
    gathered from `tokens` into `out` (epoch_buffer) and converted there, in place (one gather
    and one conversion per epoch, no temporary copy); `starts` and `lengths` are each sentence's
    first token row and token count (host arrays)."""
    n_tokens = lengths[order]
    ends = np.cumsum(n_tokens)
    rows = np.repeat(starts[order] - (ends - n_tokens), n_tokens) + np.arange(
        int(ends[-1]) if len(ends) else 0
    )
    segment = np.repeat(np.arange(len(order)) % batch_size, n_tokens)
    sentence_bounds = np.minimum(np.arange(0, len(order) + batch_size, batch_size), len(order))
    sentence_bounds = sentence_bounds[: -(-len(order) // batch_size) + 1]
    token_bounds = np.concatenate([[0], ends])[sentence_bounds]
    epoch = out[: len(rows)]
    staged = epoch.view(tokens.dtype)  # the same bytes: both dtypes are 2 bytes wide
    torch.index_select(tokens, 0, torch.from_numpy(rows).to(out.device), out=staged)
    if epoch.dtype != tokens.dtype:
        convert_into(epoch, staged)  # in place: no temporary copy of the tokens
    return EpochTokens(
        epoch,
        torch.from_numpy(segment).to(out.device),
        token_bounds,
        np.diff(sentence_bounds),
    )


def staged_inputs(inputs: ProbeInputs, buffer: torch.Tensor) -> ProbeInputs:
    """`inputs` (the validation set) with its packed tokens converted into `buffer`, free between
    an epoch's last step and the next epoch's gather, when they fit: the same values as
    converting them chunk by chunk, without a chunk-sized temporary each epoch."""
    assert inputs.tokens is not None  # token probes' validation inputs carry their tokens
    n = inputs.tokens.shape[0]
    if inputs.token_starts is not None or n > buffer.shape[0]:
        return inputs
    return dataclasses.replace(inputs, tokens=convert_into(buffer[:n], inputs.tokens))


def minibatch_logits(
    probe_type: str,
    params: dict[str, torch.Tensor],
    inputs: ProbeInputs,
    epoch: EpochTokens,
    batch: int,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Logits [R, sentences of minibatch `batch`] of the replicas in `params` (the token std folded
    into their weights, as probe_models does)."""
    assert inputs.token_std is not None  # token probes' inputs carry the training-token std
    lo, hi = int(epoch.token_bounds[batch]), int(epoch.token_bounds[batch + 1])
    pooled = chunk_pooled(
        epoch.tokens[lo:hi],
        None,
        epoch.segment[lo:hi],
        int(epoch.sizes[batch]),
        params["w"] / inputs.token_std,
        probe_type == "attention_probe",
        dtype,
    )
    return pooled.sum(dim=2).T + params["b"][:, None]


def step_plan(visit: np.ndarray, device) -> tuple[torch.Tensor, list[list[tuple[int, int, int]]]]:
    """The replicas on each minibatch at each step of an epoch (`visit` [R, steps]: the minibatch
    replica r is on at each step), as one device tensor of replica indices and, per step, host
    triples (minibatch, first, end) slicing it: no transfer and no sync inside the epoch."""
    replicas, plan, at = [], [], 0
    for step in range(visit.shape[1]):
        triples = []
        for batch in np.unique(visit[:, step]):
            on = np.flatnonzero(visit[:, step] == batch)
            replicas.append(on)
            triples.append((int(batch), at, at + len(on)))
            at += len(on)
        plan.append(triples)
    return torch.from_numpy(np.concatenate(replicas)).to(device), plan
