"""The demo base model: a tiny Llama-style causal LM pretrained here on generated completion text.

Used only when no base model path is configured. The corpus is plain documents of answer blocks
(and some critic blocks) with realistic mess: a share of wrong answers and of documents whose
blocks run together without separators. As on the web text real base models learn from, the
*answer format* varies between documents and is consistent within one (`ANSWER_STYLES`): a bare
answer (the format the tasks' programs check), a sentence ("The answer is 42."), or the answer
followed by an explanation line. Asked without demonstrations, the model cannot know which format
is wanted; with a few demonstrations it continues their format. That gap is what SFT on few-shot
self-generated data can close (docs/sft.md). The result is a *base* model: it continues text and
has no chat template. It is saved with `save_pretrained` (safetensors) and loaded back through the
same loader as a real model.
"""

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from proj_assets.sft.prompts import STOP_SEQUENCE, answer_block, critic_block
from proj_assets.sft.settings import DemoModelSettings
from proj_assets.sft.tasks import TASK_TYPES, corrupt_answer, make_instruction

CORPUS_SEED_OFFSET = 10_000  # pretraining items come from their own seed space
EOS, PAD = "<|endoftext|>", "<|pad|>"
EXPLANATIONS = {
    "add": "We add the two numbers.",
    "reverse": "We read the letters from the end.",
    "sort": "We put the digits in order.",
    "count": "We count every letter once.",
    "upper": "We write each letter as a capital.",
}


def styled_answer(task_type: str, answer: str, style: str) -> str:
    """The text after `Answer: ` in a document of `style` (see ANSWER_STYLES)."""
    if style == "plain":
        return answer
    if style == "sentence":
        return f"The answer is {answer}."
    if style == "explained":
        return f"{answer}\n{EXPLANATIONS[task_type]}"
    raise ValueError(f"unknown answer style {style!r}; expected one of {ANSWER_STYLES}")


ANSWER_STYLES = ("plain", "sentence", "explained")


def pretraining_documents(
    cfg: DemoModelSettings, held_out: Sequence[str] = (), ngram: int = 8
) -> list[str]:
    """The generated pretraining corpus: `n_documents` documents of up to `blocks_per_document`
    blocks. A block whose instruction overlaps a `held_out` (test) instruction by the training
    set's decontamination rule (`dataset.py`: a shared word `ngram`-gram, a shorter test item
    its own gram) is left out, so the base model never saw a test item word for word."""
    from proj_assets.sft.dataset import overlapping_gram, test_ngram_index

    index = test_ngram_index(list(held_out), ngram)
    rng = random.Random(cfg.seed)
    styles, weights = zip(*cfg.answer_styles.items(), strict=False)
    docs = []
    for d in range(cfg.n_documents):
        blocks = []
        style = rng.choices(styles, weights)[0]  # one answer format per document
        for b in range(cfg.blocks_per_document):
            item = make_instruction(
                rng.choice(TASK_TYPES), CORPUS_SEED_OFFSET + cfg.seed, d * 64 + b
            )
            if index and overlapping_gram(item.instruction, index) is not None:
                continue
            wrong = rng.random() < cfg.answer_noise
            answer = corrupt_answer(item, rng) if wrong else item.reference
            if rng.random() < cfg.critic_fraction:
                blocks.append(
                    critic_block(
                        item.instruction,
                        answer,
                        verdict_correct=not wrong,
                        yes_first=rng.random() < 0.5,
                    )
                )
            else:
                blocks.append(
                    answer_block(item.instruction, styled_answer(item.task_type, answer, style))
                )
        doc = "".join(blocks)
        if rng.random() < cfg.unseparated_fraction:
            doc = doc.replace(STOP_SEQUENCE, "")
        docs.append(doc)
    return docs


def train_tokenizer(documents: list[str], vocab_size: int):
    """A byte-level BPE whose pre-tokens are words and single digits, each with its leading space
    (so ` 4` and ` k` are one token each), wrapped as a transformers fast tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+"), behavior="isolated"
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(documents, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=None
    )


def build_model(cfg: DemoModelSettings, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.hidden_size * 2,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.seq_len * 2,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    return LlamaForCausalLM(config)


def packed_chunks(documents: list[str], tokenizer, seq_len: int):
    """All documents tokenized, joined with EOS and cut into `seq_len` chunks (a [n, seq_len] tensor)."""
    import torch

    ids: list[int] = []
    for encoded in tokenizer(documents, add_special_tokens=False)["input_ids"]:
        ids.extend(encoded + [tokenizer.eos_token_id])
    n = len(ids) // seq_len
    if n == 0:
        raise ValueError(
            f"pretraining corpus has {len(ids)} tokens, fewer than one sequence of {seq_len}"
        )
    return torch.tensor(ids[: n * seq_len]).view(n, seq_len)


def pretrain(
    cfg: DemoModelSettings,
    out_dir: Path,
    log: Callable[[str], None] = print,
    tokenizer=None,
    held_out: Sequence[str] = (),
    ngram: int = 8,
) -> dict:
    """Train a tokenizer (unless one is given) and the model on the corpus decontaminated against
    `held_out` (see `pretraining_documents`), save both to `out_dir`; return a summary (losses,
    sizes)."""
    import torch

    torch.manual_seed(cfg.seed)
    documents = pretraining_documents(cfg, held_out, ngram)
    tokenizer = tokenizer if tokenizer is not None else train_tokenizer(documents, cfg.vocab_size)
    chunks = packed_chunks(documents, tokenizer, cfg.seq_len)
    model = build_model(cfg, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.learning_rate, total_steps=cfg.train_steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(cfg.seed)
    losses, start = [], time.perf_counter()
    model.train()
    for step in range(cfg.train_steps):
        batch = chunks[torch.randint(len(chunks), (cfg.batch_size,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % max(1, cfg.train_steps // 10) == 0 or step + 1 == cfg.train_steps:
            rate = (step + 1) / (time.perf_counter() - start)
            log(
                f"pretrain step {step + 1}/{cfg.train_steps} loss {loss:.3f} "
                f"({rate:.1f} steps/s, ETA {(cfg.train_steps - step - 1) / rate:.0f}s)"
            )
    model.eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return {
        "losses": losses,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "n_documents": len(documents),
        "n_sequences": len(chunks),
        "vocab_size": len(tokenizer),
    }


def generator_code_hash() -> str:
    """Hash of the code that defines the corpus and model (this module, tasks, prompts), so a code
    change gives the cached demo model a new content address instead of a stale hit."""
    from proj_assets.sft.input_versions import sources_hash

    return sources_hash(("demo_model.py", "tasks.py", "prompts.py"))
