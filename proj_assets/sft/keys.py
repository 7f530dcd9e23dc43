"""Asset keys and check names of the sft domain (the contract in DESIGN.md)."""

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
SFT_ASSET_KEYS = [
    BASE_MODEL,
    TEST_INSTRUCTIONS,
    PILOT_SETTINGS,
    PILOT,
    PILOT_COMPARISON,
    SHARDS,
    CRITIC,
    TRAINING_SET,
    ADAPTER,
    PAIRED,
    STATS,
]

RUNAWAY_CHECK = "runaway_rate_below_max"
TOKEN_LIMIT_CHECK = "token_limit_rate_below_max"
CRITIC_AUC_CHECK = "critic_auc_above_min"


def seed_and_limit_threads(compute, cfg: SftSettings, offset: int = 0) -> int:
    """`compute.seed_everything(offset)` with this domain's `torch_threads` when the profile sets it."""
    return compute.seed_everything(offset, threads=cfg.torch_threads)
