"""GPU check (issue 21): one command, a few minutes, on a CUDA machine. Prints pass/fail with figures for
  1. QLoRA: a tiny Llama (the demo's, briefly pretrained) loaded 4-bit NF4 through the sft code
     (`choose_method` from the profile device `cuda`, compute dtype from the GPU), a few LoRA
     steps, the adapter saved, reloaded on the 4-bit base and generating;
  2. batched token probes (`probes.trainer.train_replicas`, attention and multimax) on CUDA:
     seconds per epoch, finite parameters;
  3. scaling memory: the batch plan's estimate against `torch.cuda.max_memory_allocated` of a
     real training run per shape (bench/scaling_memory.py), and the trial time model measured
     (FLOP/s and seconds per layer-step, for scaling.trainer.flops_per_second and
     layer_step_overhead_s).
On a machine without CUDA it says so and exits 2. Run: .venv/bin/python bench/gpu_check.py
"""

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def check_qlora(tmp: Path) -> tuple[bool, str]:
    import torch

    from proj_assets.sft.demo_model import pretrain
    from proj_assets.sft.generation import generate
    from proj_assets.sft.lora_training import (
        bitsandbytes_available,
        choose_method,
        is_cuda_device,
        load_adapter_model,
        load_base_for_training,
        qlora_compute_dtype,
        train_lora,
    )
    from proj_assets.sft.prompts import STOP_SEQUENCE, PromptBuilder
    from proj_assets.sft.settings import DemoModelSettings, LoraSettings
    from proj_assets.sft.tasks import make_instructions
    from proj_assets.sft.tokenizer import load_sft_tokenizer

    method = choose_method("auto", is_cuda_device("cuda"), bitsandbytes_available())
    if method != "qlora":
        return False, "bitsandbytes is not installed: pip install -e '.[qlora]'"
    folder = tmp / "tiny_llama"
    pretrain(
        DemoModelSettings(
            n_documents=200,
            blocks_per_document=4,
            hidden_size=64,
            n_layers=2,
            n_heads=4,
            train_steps=60,
            batch_size=8,
        ),
        folder,
        log=lambda m: None,
    )
    model = load_base_for_training(folder, "qlora", "cuda")
    four_bit = sum(type(m).__name__ == "Linear4bit" for m in model.modules())
    tokenizer, builder, items = (
        load_sft_tokenizer(folder),
        PromptBuilder(n_shots=0),
        make_instructions(16, seed=3),
    )
    prompts = [builder.answer_prompt(i.instruction) for i in items]
    cfg = LoraSettings(
        epochs=2,
        batch_size=4,
        r=4,
        alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    model, log = train_lora(
        model,
        tokenizer,
        prompts,
        [builder.completion(i.reference) for i in items],
        cfg,
        log=lambda m: None,
    )
    model.save_pretrained(tmp / "adapter", safe_serialization=True)
    tuned = load_adapter_model(folder, tmp / "adapter", "cuda", "qlora")
    out = generate(
        tuned, tokenizer, prompts[:4], max_new_tokens=6, stop=[STOP_SEQUENCE], do_sample=False
    )
    finite = all(torch.isfinite(torch.tensor(log.train_losses)))
    ok = four_bit > 0 and finite and len(out) == 4
    return ok, (
        f"{four_bit} Linear4bit layers, compute dtype {qlora_compute_dtype('cuda')}, {len(log.train_losses)} "
        f"steps, loss {log.train_losses[0]:.3f} -> {log.train_losses[-1]:.3f}, reloaded adapter generated "
        f"{len(out)} answers (first {out[0].completion!r})"
    )


def check_token_probes() -> tuple[bool, str]:
    import numpy as np
    import torch

    from proj_assets.probes.probe_models import ProbeInputs, matmul_dtype
    from proj_assets.probes.trainer import TrainParams, train_replicas

    n, length, dim, seeds = 1600, 64, 1536, 20  # the research-shaped fold of bench/probe_sweep.py
    gen = torch.Generator().manual_seed(0)
    labels = (torch.rand(n, generator=gen) > 0.5).float()
    tokens = torch.randn(n * length, dim, generator=gen, dtype=torch.float32)
    tokens[:, 0] += 0.8 * labels.repeat_interleave(length)
    inputs = ProbeInputs(
        torch.zeros(n, 2),
        tokens.mean(0, keepdim=True).expand(n, dim).clone(),
        tokens.to(torch.float16),
        torch.full((n,), length),
        torch.ones(dim),
    )
    dtype, parts, ok = matmul_dtype("auto", "cuda"), [], True
    for probe in ("attention_probe", "multimax_probe"):
        hp = TrainParams(0.01, 0.001, 3, 256, 4, patience=3)
        y = np.tile(labels.numpy(), (seeds, 1))
        train_replicas(
            probe,
            inputs,
            y,
            list(range(seeds)),
            TrainParams(0.01, 0.001, 1, 256, 4),
            device="cuda",
            matmul_dtype=dtype,
        )  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        params = train_replicas(
            probe, inputs, y, list(range(seeds)), hp, device="cuda", matmul_dtype=dtype
        )
        torch.cuda.synchronize()
        per_epoch = (time.perf_counter() - start) / 3
        finite = bool(torch.isfinite(params["w"]).all())
        ok &= finite
        parts.append(
            f"{probe} {per_epoch:.3f} s/epoch ({seeds} seeds, {n} x {length} x {dim}, {dtype}), "
            f"finite={finite}"
        )
    return ok, "; ".join(parts)


def check_scaling_memory() -> tuple[bool, str]:
    import torch
    from scaling_memory import SHAPES, measure

    from proj_assets.scaling.arch_grid import N_FEATURES
    from proj_assets.scaling.model import ArchConfig, TimeSeriesTransformer, numel

    rows = [measure(*shape, budget_mb=4000.0, steps=3, device="cuda") for shape in SHAPES]
    ok = all(r["measured_mb"] <= r["estimate_mb"] for r in rows)
    shown = ", ".join(
        f"{r['shape']} mb{r['micro_batch']}: {r['measured_mb']:.0f}/{r['estimate_mb']:.0f} MB "
        f"({r['ratio']:.2f})"
        for r in rows
    )
    timings = []  # (flops, layer-steps, seconds): a wide shallow and a narrow deep model, one step each
    for d, layers, batch in ((1024, 2, 256), (64, 96, 64)):
        model = TimeSeriesTransformer(ArchConfig(N_FEATURES, d, layers, 4)).cuda()
        opt = torch.optim.AdamW(model.parameters())
        x, y = torch.randn(batch, 128, N_FEATURES, device="cuda"), torch.rand(batch, device="cuda")
        for i in range(6):
            if i == 1:
                torch.cuda.synchronize()
                start = time.perf_counter()
            torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
            opt.step()
            opt.zero_grad()
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / 5
        timings.append(
            (batch * (6 * numel(model) * 128 + 12 * layers * 128 * 128 * d), layers, seconds)
        )
    (f1, l1, s1), (f2, l2, s2) = timings  # s = f / F + l * c, two equations
    overhead = max((s2 - s1 * f2 / f1) / (l2 - l1 * f2 / f1), 0.0)
    flops_per_s = f1 / max(s1 - l1 * overhead, 1e-9)
    return (
        ok,
        f"{shown}; time model: flops_per_second ~{flops_per_s:.2e}, layer_step_overhead_s ~{overhead:.2e}",
    )


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print(
            "bench/gpu_check.py needs CUDA: torch.cuda.is_available() is False on this machine "
            f"(torch {torch.__version__}). Run it on a machine with an NVIDIA GPU; nothing was checked."
        )
        return 2
    print(
        f"GPU: {torch.cuda.get_device_name()} (capability {torch.cuda.get_device_capability()}), torch {torch.__version__}"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for name, check in (
            ("qlora_4bit", lambda: check_qlora(Path(tmp))),
            ("token_probes", check_token_probes),
            ("scaling_memory", check_scaling_memory),
        ):
            start = time.perf_counter()
            try:
                ok, detail = check()
            except Exception as exc:  # one check failing must not hide the others' results
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            failed |= not ok
            print(
                f"{'PASS' if ok else 'FAIL'} {name} ({time.perf_counter() - start:.0f} s): {detail}",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
