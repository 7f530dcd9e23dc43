"""A tiny probes profile (3 problems, a 1-config sweep), its definitions and resources, all under
tmp_path; tokenizers of each family for the span tests."""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from proj_assets.definitions import build_resources
from proj_assets.probes.settings import ProbesSettings
from proj_tests.definitions_helpers import demo_profile, domain_defs, materializable, with_settings

TINY_SPEC = {
    "name": "tiny",
    "factors": {
        "probe_type": ["linear_probe"],
        "layer": [2],
        "learning_rate": [0.05],
        "epochs": [10],
    },
    "stages": {"stage1_seeds": 2, "stage2_seeds": 3, "promote_top_k": 1},
}


@dataclass
class Probes:
    """One profile's probes definitions and every resource of the code location, outputs under one root."""

    defs: dg.Definitions
    resources: dict

    def run(self, instance, keys, partition=None, raise_on_error=True, tags=None):
        """Materialize `keys` (with their checks) in a new run; the domain's other assets and checks
        are in the run's graph, so the gates see the upstream checks."""
        return dg.materialize(
            materializable(self.defs),
            selection=dg.AssetSelection.assets(*keys),
            resources=self.resources,
            instance=instance,
            partition_key=partition,
            raise_on_error=raise_on_error,
            tags=tags,
        )

    def run_checks(self, instance, check_keys, partition=None, tags=None):
        """Re-execute only the given checks (no asset step) in a new run. dagster's `materialize`
        rejects a partition_key when no asset is selected ("no PartitionsDefinition shared by all the
        provided assets"), so a partition is passed as the run's partition tags instead (or `tags`,
        e.g. a partition range)."""
        if partition is not None:
            tags = {
                "dagster/partition": str(partition),
                **{
                    f"dagster/partition/{dim}": key
                    for dim, key in partition.keys_by_dimension.items()
                },
            }
        return dg.materialize(
            materializable(self.defs),
            selection=dg.AssetSelection.checks(*check_keys),
            resources=self.resources,
            instance=instance,
            tags=tags,
            raise_on_error=False,
        )


def refusal(result) -> str:
    """The gate's own refusal of the run's failed step (the message, not a stack trace that mentions names)."""
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    error, messages = failure.event_specific_data.error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    refusals = [m for m in messages if "refusing to run" in m]
    assert len(refusals) == 1, messages
    return refusals[0]


@pytest.fixture
def make_probes(tmp_path: Path):
    """A function `(**probes_overrides) -> Probes`: the demo profile whose probes section is the tiny
    one (with the overrides, e.g. to point the corpus at a file), built under tmp_path."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(TINY_SPEC))

    def make(**probes_overrides) -> Probes:
        probes = ProbesSettings.model_validate(
            {
                "sweep_spec": str(spec_path),
                "corpus": {"n_groups": 3, "traces_per_group": 2, "seed": 3},
                "model": {"max_tokens": 8, "batch_size": 32},
                **probes_overrides,
            }
        )
        profile = with_settings(demo_profile(), probes=probes)
        return Probes(domain_defs("probes", profile, tmp_path), build_resources(profile, tmp_path))

    return make


@pytest.fixture
def probes(make_probes) -> Probes:
    """The tiny probes profile's definitions and resources."""
    return make_probes()


_SENTENCES = [
    "So, the plan is to multiply first.",
    "Wait, let me check: 3 times 4 is 12.",
    "Hmm, that looks right.",
    "The answer is 12.",
    "Let me recompute the product carefully.",
]
TRAINING_TEXT = (
    _SENTENCES + [" ".join(_SENTENCES)]
) * 20  # joined: words after a space get "Ġ" merges


def _byte_level_bpe(trim_offsets: bool):
    """Qwen2 / Llama-3 / GPT-2 style: leading spaces inside tokens ("ĠSo"), no pad token of its own."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=trim_offsets)
    tok.train_from_iterator(
        TRAINING_TEXT,
        trainers.BpeTrainer(
            vocab_size=700,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def _sentencepiece_llama2():
    """Llama-2 style: "▁" word prefixes (also as lone tokens), byte fallback, BOS, no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [  # training splits on whitespace, like SentencePiece
            pre_tokenizers.Split("\n", "isolated"),
            pre_tokenizers.Metaspace("▁", prepend_scheme="first", split=True),
        ]
    )
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    bytes_ = [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(
        TRAINING_TEXT,
        trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>", *bytes_]),
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace("▁", prepend_scheme="first", split=False)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def _wordpiece_cased():
    """BERT style: "##" continuations, [CLS] ... [SEP]."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        TRAINING_TEXT,
        trainers.WordPieceTrainer(
            vocab_size=200, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]"]
        ),
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
    )


TOKENIZER_FAMILIES = {
    "byte_bpe_trim": lambda: _byte_level_bpe(True),
    "byte_bpe_untrimmed": lambda: _byte_level_bpe(False),
    "sentencepiece_llama2": _sentencepiece_llama2,
    "wordpiece": _wordpiece_cased,
}


@pytest.fixture(scope="session", params=sorted(TOKENIZER_FAMILIES))
def family_tokenizer(request):
    """(family name, tokenizer) for each tokenizer family, built offline with `tokenizers`."""
    return request.param, TOKENIZER_FAMILIES[request.param]()
