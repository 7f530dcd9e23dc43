"""Which tokens of a model input belong to which sentence, exactly, for any fast tokenizer.

Tokens are assigned to sentences by character overlap after trimming whitespace from each token's
offsets: byte-level BPE (GPT-2, Qwen2, Llama-3) puts a word's leading space inside the token
("ĠSo" covers " So"), SentencePiece marks word starts with "▁" whose offsets may cover the space,
WordPiece has neither. A token of whitespace only ("Ġ", "Ċ", a lone "▁") belongs to a sentence
when it lies inside it, also when a post-processor trimmed its offsets to zero width (`(6, 6)`
for an interior "Ġ"); between sentences it belongs to none. A sentence's positions are kept as a
list, never assumed contiguous.

**Boundary tokens.** A token whose text covers characters of two sentences (the Llama-3 / Qwen2
split regex makes `。然后我们算第二步` one pre-token in a CJK trace without spaces; a SentencePiece
merge can span a tab, `▁replied.\t(Check:`) is a *boundary token*. Rule: it is given to the **later**
sentence only. In a causal model its hidden state has read the later sentence's text, so giving it
to the earlier sentence would leak the next sentence into that one's features; the later sentence's
context holds the earlier one anyway. Each plan records, per sentence, how many boundary tokens it
received (`boundary`); the extraction counts them per trace in the cache metadata and a check fails
above the profile's share (`probes.model.max_boundary_trace_share`). A sentence left with no token
of its own is a SpanError.

Trace mode encodes prompt + the trace text as-is (the corpus's own whitespace and newlines; when
the corpus has no `trace_text`, sentences are joined by single spaces). A trace longer than the
model context is encoded in overlapping windows; each sentence takes its hidden states from the
earliest window holding all its kept tokens (the one with the most preceding context).
"""

import bisect
import hashlib
from pathlib import Path

# Part of every activation cache key: bump when what a cached sentence's tokens are changes.
EXTRACTION_VERSION = (
    "exact-spans-3"  # 3: boundary tokens to the later sentence, interior zero-width kept
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "tokenizer.model",
    "spiece.model",
)


class SpanError(ValueError):
    """A trace's text does not contain its sentences in order; names the trace and sentence."""


def tokenizer_hash(model_dir: str | Path) -> str:
    """Content hash of the tokenizer files of a model folder (no tokenizer is loaded)."""
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        file = Path(model_dir) / name
        if file.is_file():
            digest.update(name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def locate_sentences(
    trace_id: str, text: str, sentences: list[str], base: int = 0
) -> list[tuple[int, int]]:
    """Character bounds [start, end) of each (whitespace-trimmed) sentence in `text`, in order,
    shifted by `base`. A sentence missing from the text, or found only before the end of the
    previous one (overlap or wrong order), is a SpanError naming trace and sentence."""
    bounds, pos = [], 0
    for idx, sentence in enumerate(sentences):
        needle = sentence.strip()
        at = text.find(needle, pos)
        if at < 0:
            earlier = text.find(needle)
            where = (
                f"occurs only at character {earlier}, before the end of sentence {idx - 1} (character {pos}): "
                "sentences overlap or are out of order"
                if earlier >= 0
                else "does not occur in the trace text"
            )
            raise SpanError(f"trace {trace_id!r}, sentence {idx} ({needle[:60]!r}) {where}")
        bounds.append((base + at, base + at + len(needle)))
        pos = at + len(needle)
    return bounds


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def assign_tokens(
    offsets: list[tuple[int, int]], text: str, bounds: list[tuple[int, int]]
) -> tuple[list[list[int]], list[int]]:
    """(token positions per sentence, boundary tokens received per sentence). A token belongs to
    the sentence its non-space characters overlap; one overlapping several is a boundary token and
    goes to the last of them. A token of whitespace only belongs to the sentence it lies inside
    (zero-width: strictly inside), else to none."""
    starts, ends = [lo for lo, _hi in bounds], [hi for _lo, hi in bounds]
    owned: list[list[int]] = [[] for _ in bounds]
    boundary = [0] * len(bounds)
    for position, (s0, e0) in enumerate(offsets):
        s, e = _trimmed(text, s0, e0)
        if s >= e:
            k = bisect.bisect_right(starts, s0) - 1
            inside = (
                (s0 < e0 and e0 <= ends[k]) or (s0 == e0 and starts[k] < s0 < ends[k])
                if k >= 0
                else False
            )
            if inside:
                owned[k].append(position)
            continue
        first = bisect.bisect_right(ends, s)  # the first sentence ending after the token starts
        last = bisect.bisect_left(starts, e) - 1  # the last sentence starting before the token ends
        if first <= last:
            owned[last].append(position)
            boundary[last] += last > first
    return owned, boundary


def special_prefix(tokenizer) -> list[int]:
    """The special tokens a tokenizer puts before text (e.g. BOS for Llama, CLS for BERT)."""
    enc = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)
    prefix = []
    for token, special in zip(enc["input_ids"], enc["special_tokens_mask"], strict=False):
        if not special:
            break
        prefix.append(token)
    return prefix


def window_for(kept: list[int], width: int, stride: int) -> int:
    """Index of the earliest window [k*stride, k*stride + width) that holds every kept position."""
    k = max(0, -(-(kept[-1] + 1 - width) // stride))
    if k * stride > kept[0]:
        raise ValueError(
            f"a sentence's kept tokens span {kept[-1] - kept[0] + 1} positions, more than the "
            f"window overlap ({width - stride}); lower max_tokens or raise max_context_tokens"
        )
    return k


def plan_trace(
    tokenizer,
    trace_id: str,
    prompt: str,
    trace_text: str,
    sentences: list[str],
    uids: list[int],
    max_tokens: int,
    max_context: int,
) -> list[dict]:
    """Model inputs for one trace (one per window used) and each sentence's positions in them."""
    text = prompt + trace_text
    bounds = locate_sentences(trace_id, trace_text, sentences, base=len(prompt))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    owned, boundary = assign_tokens(enc["offset_mapping"], text, bounds)
    prefix = special_prefix(tokenizer)
    width = max_context - len(prefix)
    stride = max(1, width - width // 2)
    plans: dict[int, dict] = {}
    for idx, (uid, positions) in enumerate(zip(uids, owned, strict=False)):
        if not positions:
            crossed = (
                " (a boundary token spans it and the next sentence: it went to the later one)"
                if idx + 1 < len(boundary) and boundary[idx + 1]
                else ""
            )
            raise SpanError(
                f"trace {trace_id!r}, sentence {idx} ({sentences[idx][:60]!r}) has no tokens{crossed}"
            )
        kept = positions[:max_tokens]
        k = window_for(kept, width, stride) if len(enc["input_ids"]) > width else 0
        plan = plans.setdefault(
            k,
            {
                "input_ids": prefix + enc["input_ids"][k * stride : k * stride + width],
                "spans": {},
                "boundary": {},
            },
        )
        plan["spans"][uid] = [len(prefix) + p - k * stride for p in kept]
        plan["boundary"][uid] = boundary[idx]
    return list(plans.values())


def plan_sentence(tokenizer, text: str, uid: int, max_tokens: int, max_context: int) -> dict:
    """One encoder input for a sentence alone (with its special tokens) and its own positions."""
    enc = tokenizer(
        text,
        add_special_tokens=True,
        truncation=True,
        max_length=max_context,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    offsets = [
        (0, 0) if special else span
        for span, special in zip(enc["offset_mapping"], enc["special_tokens_mask"], strict=False)
    ]
    positions = assign_tokens(offsets, text, [(0, len(text))])[0][0]
    if not positions:
        raise SpanError(f"sentence uid {uid} ({text[:60]!r}) has no tokens")
    return {"input_ids": enc["input_ids"], "spans": {uid: positions[:max_tokens]}}
