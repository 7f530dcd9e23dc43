"""Token-probe minibatches shaped for a GPU: a fixed number of tensor operations per minibatch.

Once per epoch, on the host, the epoch's sentence order becomes one token index (`rows`: the
token rows of every sentence, minibatch after minibatch) and one segment index (each token's
sentence within its minibatch), moved to the device in one transfer each, with the token and
sentence bounds of every minibatch kept on the host. Per step, for each minibatch some replica is
on (replicas keep their own seeded order), the replica indices were listed up front too; the
minibatch is then one slice of each index, one gather of its tokens, one or two matmuls for all
its replicas at once and the pooling: the same operations whatever the number of sentences or
replicas, no copy per sentence and no host sync inside the epoch. Its backward runs at once, so
only one minibatch's activations are alive and nothing is recomputed (the CPU-only `KEEP_BYTES`
checkpointing of probe_models does not apply to training).
"""

from dataclasses import dataclass

import numpy as np
import torch

from proj_assets.probes.probe_models import ProbeInputs, chunk_pooled


@dataclass(frozen=True)
class EpochTokens:
    rows: torch.Tensor  # [epoch tokens] token rows of the sentences, in the epoch's order
    segment: torch.Tensor  # [epoch tokens] each token's sentence position within its minibatch
    token_bounds: np.ndarray  # host [n_batches + 1]: each minibatch's slice of `rows`
    sizes: np.ndarray  # host [n_batches]: sentences per minibatch


def epoch_tokens(
    starts: np.ndarray, lengths: np.ndarray, order: np.ndarray, batch_size: int, device
) -> EpochTokens:
    """Index of the epoch whose sentences come in `order`, cut into minibatches of `batch_size`;
    `starts` and `lengths` are each sentence's first token row and token count (host arrays)."""
    n_tokens = lengths[order]
    ends = np.cumsum(n_tokens)
    rows = np.repeat(starts[order] - (ends - n_tokens), n_tokens) + np.arange(
        int(ends[-1]) if len(ends) else 0
    )
    segment = np.repeat(np.arange(len(order)) % batch_size, n_tokens)
    sentence_bounds = np.minimum(np.arange(0, len(order) + batch_size, batch_size), len(order))
    sentence_bounds = sentence_bounds[: -(-len(order) // batch_size) + 1]
    token_bounds = np.concatenate([[0], ends])[sentence_bounds]
    return EpochTokens(
        torch.from_numpy(rows).to(device),
        torch.from_numpy(segment).to(device),
        token_bounds,
        np.diff(sentence_bounds),
    )


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
    lo, hi = int(epoch.token_bounds[batch]), int(epoch.token_bounds[batch + 1])
    pooled = chunk_pooled(
        inputs.tokens,
        epoch.rows[lo:hi],
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
