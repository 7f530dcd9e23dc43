"""sft domain assets: base model in completion mode -> QC-gated self-generated data -> critic ->
training set -> LoRA/QLoRA adapter -> paired evaluation. The bodies live in the modules below."""

from proj_assets.sft.assets_data import critic_scores, pilot_generations, scale_shards, test_instructions, training_set
from proj_assets.sft.assets_eval import paired_results, stats
from proj_assets.sft.assets_model import adapter, base_model

__all__ = ["adapter", "base_model", "critic_scores", "paired_results", "pilot_generations", "scale_shards",
           "stats", "test_instructions", "training_set"]
