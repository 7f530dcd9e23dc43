"""sft model assets: the completion-mode base model and the LoRA/QLoRA adapter."""

import dagster as dg
import polars as pl

from proj_assets.sft.budget_guard import guard_step
from proj_assets.sft.keys import ADAPTER, BASE_MODEL, TRAINING_SET, seed_and_limit_threads
from proj_assets.sft.lineage import latest_artifact_path
from proj_assets.sft.settings import SftSettings
from proj_assets.shared.conventions import GATED
from proj_assets.shared.gates import gated
from proj_assets.shared.plots import figure_markdown, new_figure
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse
from proj_resources.hashing import canonical_hash
from proj_resources.models import ModelSource


def loss_curve(
    losses: list[float],
    title: str,
    val_losses: list[float] | None = None,
    steps_per_epoch: int | None = None,
) -> dg.MetadataValue:
    """Training loss per step, and (when given) validation loss at the end of each epoch."""
    fig, ax = new_figure()
    ax.plot(range(1, len(losses) + 1), losses, label="train")
    if val_losses and steps_per_epoch:
        ax.plot(
            [steps_per_epoch * (e + 1) for e in range(len(val_losses))],
            val_losses,
            "o-",
            label="validation",
        )
        ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    return figure_markdown(fig, title)


def model_assets(
    cfg: SftSettings, budget: float | None, device_tags: dict, warehouse: Warehouse
) -> list[dg.AssetsDefinition]:
    """The base model and the adapter for `cfg`, trained on the Celery queue of `device_tags`."""

    @dg.asset(
        key=BASE_MODEL, group_name="sft", kinds={"pytorch", "transformers"}, op_tags=device_tags
    )
    def base_model(
        context: dg.AssetExecutionContext,
        base_model: ModelSource,
        artifacts: ArtifactStore,
        compute: Compute,
        provenance: Provenance,
    ) -> dg.MaterializeResult:
        """The base causal LM used in completion mode: a local model folder, or the demo model pretrained here."""
        from proj_assets.sft.assets_data import held_out_items
        from proj_assets.sft.demo_model import generator_code_hash, pretrain
        from proj_assets.sft.model_folder import check_base_model_folder, content_hash

        demo_cfg = cfg.demo_model
        meta: dict = {}
        with compute.meter() as meter:
            if base_model.path:
                folder, source = check_base_model_folder(base_model.path), "local folder"
            else:
                import torch

                seed_and_limit_threads(compute, cfg)
                # the corpus leaves out every block overlapping a test item (demo_model.py)
                held_out = [r["instruction"] for r in held_out_items(cfg, artifacts)[3]]
                # the thread count changes float reduction order, hence the weights: part of the address
                spec = {
                    "config": demo_cfg.model_dump(),
                    "code": generator_code_hash(),
                    "threads": torch.get_num_threads(),
                    "held_out": canonical_hash(held_out),
                    "ngram": cfg.decontamination_ngram,
                }
                meta["corpus_decontaminated_against"] = spec["held_out"]
                folder, source = (
                    artifacts.content_path("sft_demo_model", spec),
                    "demo model pretrained here",
                )
                meta["cache_hit"] = folder.exists()
                if not folder.exists():
                    meta.update(
                        guard_step(context, "pretraining", BASE_MODEL, cfg, budget, compute)
                    )
                    with artifacts.atomic_dir(folder) as tmp:
                        summary = pretrain(
                            demo_cfg,
                            tmp,
                            log=context.log.info,
                            held_out=held_out,
                            ngram=cfg.decontamination_ngram,
                        )
                    meta.update(
                        n_parameters=summary["n_parameters"],
                        vocab_size=summary["vocab_size"],
                        pretrain_loss_final=summary["losses"][-1],
                        pretrain_loss=loss_curve(
                            summary["losses"], "demo base model pretraining loss"
                        ),
                    )
        revision = base_model.resolved_revision(str(folder))
        version = content_hash(folder)
        return dg.MaterializeResult(
            data_version=dg.DataVersion(version),
            metadata={
                **artifacts.describe(folder),
                "source": source,
                "model_revision": revision,
                "content_hash": version,
                **meter.metadata(),
                **provenance.metadata(),
                **meta,
            },
        )

    @dg.asset(
        key=ADAPTER,
        group_name="sft",
        kinds={"pytorch", "peft"},
        deps=[BASE_MODEL],
        op_tags=device_tags,
        ins={"training_set": dg.AssetIn(key=TRAINING_SET)},
        automation_condition=GATED,
    )
    @gated(ADAPTER, warehouse)
    def adapter(
        context: dg.AssetExecutionContext,
        training_set: pl.DataFrame,
        base_model: ModelSource,
        artifacts: ArtifactStore,
        compute: Compute,
        provenance: Provenance,
    ) -> dg.MaterializeResult:
        """LoRA adapter (QLoRA 4-bit NF4 when the profile's device is CUDA) fine-tuned with the prompt masked out of the loss."""
        from proj_assets.sft.lora_training import (
            adapted_modules,
            bitsandbytes_available,
            choose_method,
            is_cuda_device,
            load_base_for_training,
            quantized_compute_dtype,
            train_lora,
        )
        from proj_assets.sft.prompts import PromptBuilder
        from proj_assets.sft.tokenizer import load_sft_tokenizer

        if training_set.height < cfg.min_training_rows:
            raise dg.Failure(
                f"sft/data/training_set has {training_set.height} rows, at least {cfg.min_training_rows} "
                "needed: re-materialize it (it refuses with the counts at each filter)"
            )
        device = compute.torch_device()
        method = choose_method(cfg.lora.method, is_cuda_device(device), bitsandbytes_available())
        base_path = latest_artifact_path(context, BASE_MODEL)
        revision = base_model.resolved_revision(str(base_path))
        spec = {
            "base": revision,
            "lora": cfg.lora.model_dump(),
            "method": method,
            "shots": cfg.sft_prompt_shots,
            "data": canonical_hash(
                training_set.select("example_id", "instruction", "completion").rows()
            ),
        }
        folder = artifacts.content_path("sft_adapter", spec)
        builder = PromptBuilder(n_shots=cfg.sft_prompt_shots)
        spend = guard_step(
            context, "training", ADAPTER, cfg, budget, compute, training_rows=training_set.height
        )
        with compute.meter() as meter:
            seed_and_limit_threads(compute, cfg, cfg.lora.seed)
            tokenizer = load_sft_tokenizer(base_path)
            model = load_base_for_training(base_path, method, device)
            prompts = [builder.answer_prompt(i) for i in training_set["instruction"]]
            completions = [builder.completion(c) for c in training_set["completion"]]
            model, log = train_lora(
                model, tokenizer, prompts, completions, cfg.lora, log=context.log.info
            )
            with artifacts.atomic_dir(folder) as tmp:
                model.save_pretrained(tmp, safe_serialization=True)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        targets = adapted_modules(model)
        compute_dtype = (
            {"qlora_compute_dtype": quantized_compute_dtype(model)} if method == "qlora" else {}
        )
        per_epoch = -(-log.n_train // cfg.lora.batch_size)
        return dg.MaterializeResult(
            metadata={
                **artifacts.describe(folder),
                "method": method,
                "base_model_revision": revision,
                "adapter_hash": folder.name,
                "n_examples": training_set.height,
                "n_train": log.n_train,
                "n_validation": log.n_val,
                "trainable_parameters": trainable,
                "target_modules": dg.MetadataValue.json(targets),
                **compute_dtype,
                "final_loss": log.train_losses[-1],
                "epochs_run": len(log.val_losses),
                "best_epoch": log.best_epoch,
                "stopped_early": log.stopped_early,
                "validation_losses": dg.MetadataValue.json(log.val_losses),
                "best_validation_loss": min(log.val_losses),
                "peak_learning_rate": max(log.learning_rates),
                "loss_curve": loss_curve(
                    log.train_losses, "SFT loss (completion tokens only)", log.val_losses, per_epoch
                ),
                **meter.metadata(),
                **provenance.metadata(),
                **spend,
            }
        )

    return [base_model, adapter]
