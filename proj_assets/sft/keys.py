"""Asset keys of the sft domain (the contract in DESIGN.md) and the active profile's sft section."""

from proj_assets.profiles import load_profile
from proj_assets.sft.settings import SftSettings

BASE_MODEL = ["sft", "model", "base_model"]
TEST_INSTRUCTIONS = ["sft", "data", "test_instructions"]
PILOT_SETTINGS = ["sft", "data", "pilot_settings"]
PILOT = ["sft", "data", "pilot_generations"]
PILOT_COMPARISON = ["sft", "report", "pilot_comparison"]
SHARDS = ["sft", "data", "scale_shards"]
CRITIC = ["sft", "data", "critic_scores"]
TRAINING_SET = ["sft", "data", "training_set"]
ADAPTER = ["sft", "model", "adapter"]
PAIRED = ["sft", "eval", "paired_results"]
STATS = ["sft", "eval", "stats"]
SFT_ASSET_KEYS = [BASE_MODEL, TEST_INSTRUCTIONS, PILOT_SETTINGS, PILOT, PILOT_COMPARISON, SHARDS, CRITIC, TRAINING_SET, ADAPTER, PAIRED, STATS]

RUNAWAY_CHECK = "runaway_rate_below_max"
TOKEN_LIMIT_CHECK = "token_limit_rate_below_max"
CRITIC_AUC_CHECK = "critic_auc_above_min"


def sft_settings() -> SftSettings:
    """The sft section of the active profile (read at run time, so a test can point PROJ_PROFILE
    at a tiny profile file)."""
    return load_profile().sft


def seed_and_limit_threads(compute, offset: int = 0) -> int:
    """`compute.seed_everything(offset)` with this domain's `torch_threads` when the profile sets it."""
    return compute.seed_everything(offset, threads=sft_settings().torch_threads)
