"""One trial worker of a shared study, run as its own OS process by test_shared_study.py.

    python shared_study_worker.py <train|hang> <journal folder> <storage url or -> <n_trials> <worker> <go file>

`train` runs the real objective on a synthetic panel; `hang` starts one trial and blocks in it
(the test SIGKILLs it). Both go through the platform's worker_lock and run_trials.
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from scaling_helpers import N_FEATURES, synthetic_splits, tiny_settings

from proj_assets.scaling.arch_grid import enumerate_grid
from proj_assets.scaling.hpo import (
    CellContext,
    Objective,
    make_sampler_and_pruner,
    run_trials,
)
from proj_assets.scaling.study import StudyLocation, open_study, worker_lock

# One intra-op thread, as the trials asset sets (scaling.trainer.torch_threads): with the default
# (every core) workers beside a loaded test suite oversubscribe the CPU (a run timed out at 300 s).
torch.set_num_threads(1)


def hang(trial):
    trial.suggest_float("lr", *tiny_settings().search.lr, log=True)  # as the real objective does
    time.sleep(600)


def main(mode: str, root: str, url: str, n_trials: int, worker: int, go: str) -> None:
    settings = tiny_settings()
    location = StudyLocation(Path(root), None if url == "-" else url, heartbeat_s=1, grace_s=3)
    study = open_study(location, "2k", "h1", *make_sampler_and_pruner(settings, seed=100 + worker))
    if mode == "train":
        grid = enumerate_grid({"2k": 2000}, settings.arch, N_FEATURES)
        objective = Objective(
            CellContext(grid, synthetic_splits(), settings, 512, "cpu", 7),
            lambda: False,
            lambda _m: None,
        )
    else:
        objective = hang
    while not Path(go).exists():  # start every worker at the same moment
        time.sleep(0.01)
    with worker_lock(location, "2k", "h1", f"worker{worker}") as owner:
        ran = run_trials(
            study, objective, n_trials, owner=owner, grace_s=location.grace_s, poll_s=0.2
        )
    print(f"worker {worker} ran {ran}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
