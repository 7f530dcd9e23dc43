"""Paired evaluation of three arms on the held-out test set, and its statistics.

The arms answer every test item greedily (deterministic): `base` (the base model on the
evaluation prompt, zero-shot by default: what SFT trains on), `few_shot` (the base model on the
generation prompt, the prompt that made the training data: the strong baseline) and `sft` (base +
adapter on the evaluation prompt). An item with a program reference is
judged by the program twice: **strict exact match** (`tasks.strict_match`, the judge the stage
gate uses: the answer and nothing else) and the **lenient judge** (`tasks.lenient_match`: the
reference on the first line, whatever the wording around it). One without a reference (a type no
program can check) is judged by the critic for both. Runaway and token-limit rates (qc.py) are
reported for every arm, so a difference in accuracy can be read as format or as content.
Statistics come from statsmodels: per arm Wilson 95% intervals; for SFT against each baseline arm
(`base`, `few_shot`) exact McNemar on the paired 2x2 table, Cohen's h and Benjamini-Hochberg over
the per-type p-values, in columns suffixed `_vs_<baseline>`.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import cast

import polars as pl

from proj_assets.sft.prompts import STOP_SEQUENCE, PromptBuilder
from proj_assets.sft.settings import SftSettings
from proj_assets.sft.tasks import lenient_match, strict_match
from proj_resources.hashing import canonical_hash

OVERALL = "overall"
GATE_JUDGE = "strict exact match"
ARMS = ("base", "few_shot", "sft")
ARM_LABELS = {
    "base": "base (evaluation prompt)",
    "few_shot": "base few-shot (generation prompt)",
    "sft": "SFT",
}
# Bump when judging, the arms or the statistics change: declared as the eval assets' code_version
# and part of every eval row's input versions, so older rows read as superseded.
EVAL_CODE_VERSION = "3"


def judge(
    answers: Sequence[str],
    references: Sequence[str | None],
    critic: Callable[[list[int]], list[bool]] | None = None,
) -> dict[str, list]:
    """`strict`, `lenient` and `judged_by` per answer; `critic(indices)` judges the items without a
    reference (its verdict stands for both judges)."""
    strict: list = [
        None if ref is None else strict_match(a, ref)
        for a, ref in zip(answers, references, strict=True)
    ]
    lenient: list = [
        None if ref is None else lenient_match(a, ref)
        for a, ref in zip(answers, references, strict=False)
    ]
    missing = [i for i, c in enumerate(strict) if c is None]
    if missing:
        if critic is None:
            raise ValueError(
                f"{len(missing)} test items have no program reference and no critic was given"
            )
        for i, verdict in zip(missing, critic(missing), strict=True):
            strict[i] = lenient[i] = bool(verdict)
    return {
        "strict": [bool(c) for c in strict],
        "lenient": [bool(c) for c in lenient],
        "judged_by": ["critic" if r is None else "program" for r in references],
    }


def answer_columns(
    outputs: Mapping[str, Sequence], references: Sequence[str | None], qc
) -> dict[str, list]:
    """Per arm (`base`, `few_shot`, `sft`: the keys of `outputs`): the answer, strict and lenient judgements, runaway and token-limit
    flags; `<model>_correct` is the gate's judge (strict). `outputs` holds generation.Generation rows."""
    from proj_assets.sft.qc import is_runaway

    columns: dict[str, list] = {}
    for model, outs in outputs.items():
        answers = [o.completion for o in outs]
        verdicts = judge(answers, references)
        columns.update(
            {
                f"{model}_answer": answers,
                f"{model}_strict": verdicts["strict"],
                f"{model}_lenient": verdicts["lenient"],
                f"{model}_correct": verdicts["strict"],
                f"{model}_runaway": [is_runaway(a, qc) for a in answers],
                f"{model}_token_limit": [o.finish_reason == "length" for o in outs],
            }
        )
        columns["judged_by"] = verdicts["judged_by"]
    return columns


def prompt_builders(cfg: SftSettings) -> dict[str, PromptBuilder]:
    """The prompt of each arm: `base` and `sft` the training/evaluation prompt
    (`sft_prompt_shots`), `few_shot` the prompt the data generation samples with (`prompt_shots`,
    `critic_shots`: the same builder as the pilot and the shards, so its `template_hash` equals
    their rows' `prompt_template_hash`)."""
    evaluation = PromptBuilder(n_shots=cfg.sft_prompt_shots)
    generation = PromptBuilder(n_shots=cfg.prompt_shots, critic_shots=cfg.critic_shots)
    return {"base": evaluation, "few_shot": generation, "sft": evaluation}


def greedy_settings(cfg: SftSettings) -> dict:
    return {"max_new_tokens": cfg.eval_max_new_tokens, "stop": [STOP_SEQUENCE], "do_sample": False}


def input_versions(
    cfg: SftSettings, base_revision: str, adapter_version: str, test_set_hash: str
) -> dict[str, str]:
    """What an evaluation row depends on, name -> version (stamped with `Provenance.stamp(...,
    inputs=)`; readers keep only rows with the versions their inputs have now)."""
    builders = prompt_builders(cfg)
    return {
        "base_model_revision": base_revision,
        "adapter": adapter_version,
        "test_set": test_set_hash,
        "prompt_eval": builders["base"].template_hash(),
        "prompt_few_shot": builders["few_shot"].template_hash(),
        "greedy": canonical_hash(greedy_settings(cfg)),
        "code": EVAL_CODE_VERSION,
    }


def paired_counts(base: Sequence[bool], tuned: Sequence[bool]) -> tuple[int, int, int, int]:
    """(both right, only base right, only tuned right, both wrong)."""
    pairs = list(zip(base, tuned, strict=True))
    return (
        sum(b and t for b, t in pairs),
        sum(b and not t for b, t in pairs),
        sum(t and not b for b, t in pairs),
        sum(not b and not t for b, t in pairs),
    )


def _arm_stats(arm: str, part: pl.DataFrame) -> dict:
    """Strict accuracy with its Wilson 95% interval, lenient accuracy and QC rates of one arm."""
    from statsmodels.stats.proportion import proportion_confint

    n, correct = part.height, int(part[f"{arm}_correct"].sum())
    low, high = proportion_confint(correct, n, alpha=0.05, method="wilson")
    return {
        f"{arm}_correct": correct,
        f"{arm}_accuracy": correct / n,
        f"{arm}_ci_low": float(low),
        f"{arm}_ci_high": float(high),
        **{
            f"{arm}_{what}": float(cast(float, part[f"{arm}_{column}"].cast(pl.Float64).mean()))
            for what, column in (
                ("lenient_accuracy", "lenient"),
                ("runaway_rate", "runaway"),
                ("token_limit_rate", "token_limit"),
            )
            if f"{arm}_{column}" in part.columns
        },
    }


def _comparison(baseline: str, part: pl.DataFrame) -> dict:
    """SFT against `baseline` on the same items (strict): the discordant counts, exact McNemar p
    and Cohen's h (positive when SFT is more accurate)."""
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.proportion import proportion_effectsize

    ref, tuned = part[f"{baseline}_correct"].to_list(), part["sft_correct"].to_list()
    both, only_ref, only_tuned, neither = paired_counts(ref, tuned)
    n = len(ref)
    p = mcnemar([[both, only_ref], [only_tuned, neither]], exact=True).pvalue
    effect = proportion_effectsize((both + only_tuned) / n, (both + only_ref) / n)
    return {
        f"only_baseline_correct_vs_{baseline}": only_ref,
        f"only_sft_correct_vs_{baseline}": only_tuned,
        f"cohens_h_vs_{baseline}": float(effect),
        f"mcnemar_p_vs_{baseline}": float(p),
    }


def _scope_stats(scope: str, part: pl.DataFrame, arms: Sequence[str]) -> dict:
    row: dict = {"scope": scope, "n": part.height}
    for arm in arms:
        row.update(_arm_stats(arm, part))
    for baseline in arms:
        if baseline != "sft":
            row.update(_comparison(baseline, part))
    return row


def paired_stats(results: pl.DataFrame) -> pl.DataFrame:
    """One row overall and one per task type, for the arms `results` holds (`base` and `sft`
    always, `few_shot` when answered); per-type p-values also BH-adjusted per baseline
    (`p_bh_vs_<baseline>`, the overall row keeps its raw p)."""
    from statsmodels.stats.multitest import multipletests

    if results.height == 0:
        raise ValueError("no paired results to analyse")
    arms = [a for a in ARMS if f"{a}_correct" in results.columns]
    if not {"base", "sft"} <= set(arms):
        raise ValueError(f"paired results need base_correct and sft_correct, found arms {arms}")
    rows = [_scope_stats(OVERALL, results, arms)]
    for task_type in sorted(results["task_type"].unique().to_list()):
        part = results.filter(pl.col("task_type") == task_type)
        rows.append(_scope_stats(task_type, part, arms))
    for baseline in (a for a in arms if a != "sft"):
        raw = [r[f"mcnemar_p_vs_{baseline}"] for r in rows[1:]]
        adjusted = multipletests(raw, method="fdr_bh")[1]
        for row, p in zip(rows, [rows[0][f"mcnemar_p_vs_{baseline}"], *adjusted], strict=True):
            row[f"p_bh_vs_{baseline}"] = float(p)
    return pl.DataFrame(rows)


def beats(stats: pl.DataFrame, alpha: float, baseline: str = "base") -> tuple[bool, dict]:
    """SFT beats `baseline` when the overall McNemar p against it is below alpha and SFT is more
    accurate, both by `GATE_JUDGE` (the `*_correct` columns). With `baseline="base"` this is the
    study's stage gate; `"few_shot"` asks whether SFT beats prompting the base model with the
    generation prompt. Returns the verdict and the overall row."""
    overall = stats.filter(pl.col("scope") == OVERALL).row(0, named=True)
    if f"mcnemar_p_vs_{baseline}" not in overall:
        raise ValueError(f"stats hold no comparison with {baseline!r}: was that arm evaluated?")
    better = overall["sft_accuracy"] > overall[f"{baseline}_accuracy"]
    return bool(overall[f"mcnemar_p_vs_{baseline}"] < alpha and better), overall


def stage_gate(stats: pl.DataFrame, alpha: float) -> tuple[bool, dict]:
    """The study's stage gate: SFT beats the base model on the evaluation prompt (`beats`)."""
    return beats(stats, alpha, "base")
