"""Memory-safe evaluation: the estimator's evaluation peak never exceeds its training peak for the
research grid, the trainer evaluates at the planned micro-batch and keeps the best weights on the
CPU; on a GPU the measured peaks are compared with torch.cuda.max_memory_allocated."""

import pytest
import torch
import yaml
from scaling_helpers import synthetic_splits

from proj_assets.profiles import profile_path
from proj_assets.scaling.arch_grid import enumerate_grid, with_batch_plans
from proj_assets.scaling.memory import (
    MIB,
    SAFETY_FACTOR,
    eval_activation_bytes_per_sample,
    plan_batch,
)
from proj_assets.scaling.model import ArchConfig, TimeSeriesTransformer, count_parameters
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.trainer import TrainConfig, accumulate_gradients, evaluate, train
from proj_assets.scaling.windows import build_windows


def research_scaling() -> tuple[ScalingSettings, float]:
    """The research profile's scaling section and memory budget (read alone, so another domain's
    section being edited cannot break these tests)."""
    raw = yaml.safe_load(profile_path("research").read_text())
    return ScalingSettings.model_validate(raw["scaling"]), float(raw["compute"]["memory_budget_mb"])


def _research_plans(budgets: tuple[str, ...]):
    s, budget_mb = research_scaling()
    grid = enumerate_grid({b: s.budgets[b] for b in budgets}, s.arch, 25)
    return (
        with_batch_plans(
            grid,
            25,
            max(s.search.context_lengths),
            s.trainer.effective_batch,
            budget_mb,
            s.arch.ffn_mult,
        ),
        s,
        budget_mb,
    )


def test_evaluation_peak_never_exceeds_training_peak_for_large_configs():
    grid, s, budget_mb = _research_plans(("200M", "2B"))
    context = max(s.search.context_lengths)
    feasible = [r for r in grid.iter_rows(named=True) if r["micro_batch"] > 0]
    assert len(feasible) > 1000
    old_fixed_batch_ooms = 0
    for r in feasible:
        plan = plan_batch(
            r["n_params"],
            25,
            r["d_model"],
            r["n_layers"],
            r["n_heads"],
            context,
            s.trainer.effective_batch,
            budget_mb,
            s.arch.ffn_mult,
        )
        assert plan.eval_estimate_mb <= plan.estimate_mb <= budget_mb, r
        per_eval = (
            SAFETY_FACTOR
            * eval_activation_bytes_per_sample(25, r["d_model"], r["n_heads"], context)
            / MIB
        )
        old_fixed_batch_ooms += plan.static_mb + 1024 * per_eval > budget_mb
    # the control: evaluating at the old fixed batch of 1024 would not fit for many of these rows
    assert old_fixed_batch_ooms > 100


def test_trainer_evaluates_at_the_micro_batch_and_keeps_best_weights_on_cpu(monkeypatch):
    data = build_windows(synthetic_splits(), 4)
    torch.manual_seed(0)
    model = TimeSeriesTransformer(ArchConfig(25, 8, 1, 2))
    sizes, saved = [], {}
    forward = TimeSeriesTransformer.forward

    def recording_forward(self, windows):
        sizes.append((self.training, windows.shape[0]))
        return forward(self, windows)

    monkeypatch.setattr(TimeSeriesTransformer, "forward", recording_forward)

    class Recorder:
        def due(self, _epochs):
            return True

        def save(self, state):
            saved.update(state)

        def load(self):
            return None

    config = TrainConfig(3e-3, 0.01, 2, 5, 0.0, 12, 2, 1.0, 60, 0)
    result = train(model, data, config, checkpoint=Recorder())
    eval_sizes = [n for training, n in sizes if not training]
    assert (
        result.test and eval_sizes and max(eval_sizes) == 12
    )  # val and test batches of the micro-batch
    assert saved["best_state"] and all(t.device.type == "cpu" for t in saved["best_state"].values())


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the device machine)"
)
def test_measured_cuda_evaluation_peak_is_below_training_peak_and_the_estimate():
    device = torch.device("cuda")
    splits = synthetic_splits(n_train=2048, n_val=1024, n_test=256)
    for d, n, h, t, micro in ((256, 8, 8, 64, 64), (512, 4, 8, 128, 32), (128, 16, 4, 128, 128)):
        data = build_windows(splits, t).to("cuda")
        model = TimeSeriesTransformer(ArchConfig(25, d, n, h)).to(device)
        optimizer = torch.optim.AdamW(model.parameters())
        model.train()
        for _ in range(2):  # the second step has AdamW's moments allocated
            optimizer.zero_grad(set_to_none=False)
            accumulate_gradients(model, data, data.ends["train"][:micro], micro)
            optimizer.step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        optimizer.zero_grad(set_to_none=False)
        accumulate_gradients(model, data, data.ends["train"][:micro], micro)
        optimizer.step()
        train_peak = torch.cuda.max_memory_allocated(device) / MIB
        torch.cuda.reset_peak_memory_stats(device)
        evaluate(model, data, "val", micro)
        eval_peak = torch.cuda.max_memory_allocated(device) / MIB
        plan = plan_batch(count_parameters(25, d, n), 25, d, n, h, t, micro, 1e9)
        data_mb = (data.features.numel() + data.labels.numel()) * 4 / MIB
        print(
            f"d={d} n={n} T={t} micro={micro}: train peak {train_peak:.0f} MiB (estimate {plan.estimate_mb:.0f} "
            f"+ data {data_mb:.0f}), eval peak {eval_peak:.0f} MiB (estimate {plan.eval_estimate_mb:.0f})"
        )
        assert eval_peak <= train_peak
        assert train_peak <= plan.estimate_mb + data_mb
        del model, optimizer, data
        torch.cuda.empty_cache()
