"""sft domain assets: base model in completion mode -> QC-gated self-generated data -> critic ->
training set -> LoRA/QLoRA adapter -> paired evaluation. The bodies live in the modules below."""

from proj_assets.sft.assets_data import test_instructions, training_set
from proj_assets.sft.assets_generation import critic_scores, scale_shards
from proj_assets.sft.assets_pilot import pilot_comparison, pilot_generations, pilot_settings
from proj_assets.sft.assets_eval import paired_results, stats
from proj_assets.sft.assets_model import adapter, base_model

__all__ = ["adapter", "base_model", "critic_scores", "paired_results", "pilot_comparison", "pilot_generations",
           "pilot_settings", "scale_shards", "stats", "test_instructions", "training_set"]
