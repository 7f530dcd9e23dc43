"""A tiny probes profile (3 problems, a 1-config sweep) and its resources, all under tmp_path."""

from pathlib import Path

import pytest
import yaml

from proj_assets.profiles import PROFILES_DIR

TINY_SPEC = {"name": "tiny", "factors": {"probe_type": ["linear_probe"], "layer": [2], "learning_rate": [0.05],
                                         "epochs": [10]},
             "stages": {"stage1_seeds": 2, "stage2_seeds": 3, "promote_top_k": 1}}


@pytest.fixture
def probes_profile(tmp_path: Path, monkeypatch):
    """Write a profile whose probes section is tiny and make it the active one; returns a function
    that rewrites the probes section (e.g. to point the corpus at a file)."""
    def write(**probes_overrides) -> Path:
        raw = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
        spec_path = tmp_path / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(TINY_SPEC))
        raw["probes"] = {"sweep_spec": str(spec_path), "corpus": {"n_groups": 3, "traces_per_group": 2, "seed": 3},
                         "model": {"max_tokens": 8, "batch_size": 32}, **probes_overrides}
        path = tmp_path / f"profile_{len(list(tmp_path.glob('profile_*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("PROJ_PROFILE", str(path))
        return path

    write()
    return write


@pytest.fixture
def probe_resources(tmp_path: Path) -> dict:
    from proj_assets.probes.settings import ModelSettings
    from proj_assets.shared.compute_write import HANDOFF_IO_MANAGER, handoff_io_manager
    from proj_resources import ArtifactStore, Compute, Provenance, Warehouse, warehouse_io_manager
    from proj_resources.models import ModelSource

    database = str(tmp_path / "warehouse.duckdb")
    return {"io_manager": warehouse_io_manager(database), "warehouse": Warehouse(database=database),
            "artifacts": ArtifactStore(root=str(tmp_path / "artifacts")), "compute": Compute(threads=1),
            "provenance": Provenance(), "probe_model": ModelSource(path=ModelSettings().resolved_path()),
            HANDOFF_IO_MANAGER: handoff_io_manager(tmp_path)}


_SENTENCES = ["So, the plan is to multiply first.", "Wait, let me check: 3 times 4 is 12.",
              "Hmm, that looks right.", "The answer is 12.", "Let me recompute the product carefully."]
TRAINING_TEXT = (_SENTENCES + [" ".join(_SENTENCES)]) * 20  # joined: words after a space get "Ġ" merges


def _byte_level_bpe(trim_offsets: bool):
    """Qwen2 / Llama-3 / GPT-2 style: leading spaces inside tokens ("ĠSo"), no pad token of its own."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=trim_offsets)
    tok.train_from_iterator(TRAINING_TEXT, trainers.BpeTrainer(
        vocab_size=700, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def _sentencepiece_llama2():
    """Llama-2 style: "▁" word prefixes (also as lone tokens), byte fallback, BOS, no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([  # training splits on whitespace, like SentencePiece
        pre_tokenizers.Split("\n", "isolated"), pre_tokenizers.Metaspace("▁", prepend_scheme="first", split=True)])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    bytes_ = [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(TRAINING_TEXT, trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>", *bytes_]))
    tok.pre_tokenizer = pre_tokenizers.Metaspace("▁", prepend_scheme="first", split=False)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def _wordpiece_cased():
    """BERT style: "##" continuations, [CLS] ... [SEP]."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(TRAINING_TEXT, trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]"]))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                   unk_token="[UNK]")


TOKENIZER_FAMILIES = {"byte_bpe_trim": lambda: _byte_level_bpe(True), "byte_bpe_untrimmed": lambda: _byte_level_bpe(False),
                      "sentencepiece_llama2": _sentencepiece_llama2, "wordpiece": _wordpiece_cased}


@pytest.fixture(scope="session", params=sorted(TOKENIZER_FAMILIES))
def family_tokenizer(request):
    """(family name, tokenizer) for each tokenizer family, built offline with `tokenizers`."""
    return request.param, TOKENIZER_FAMILIES[request.param]()
