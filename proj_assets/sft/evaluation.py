"""Paired evaluation of base vs base+adapter on the held-out test set, and its statistics.

Both models answer every test item greedily (deterministic). An item with a program reference is
judged by the program twice: **strict exact match** (`tasks.strict_match`, the judge the stage
gate uses: the answer and nothing else) and the **lenient judge** (`tasks.lenient_match`: the
reference on the first line, whatever the wording around it). One without a reference (a type no
program can check) is judged by the critic for both. Runaway and token-limit rates (qc.py) are
reported for both models, so a difference in accuracy can be read as format or as content.
Statistics come from statsmodels: exact McNemar on the paired 2x2 table, Wilson 95% intervals,
Cohen's h, and Benjamini-Hochberg over the per-type p-values.
"""

from collections.abc import Callable, Sequence

import polars as pl

from proj_assets.sft.tasks import lenient_match, strict_match

OVERALL = "overall"
GATE_JUDGE = "strict exact match"
MODELS = ("base", "sft")


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
    outputs: dict[str, Sequence], references: Sequence[str | None], qc
) -> dict[str, list]:
    """Per model (`base`, `sft`): the answer, strict and lenient judgements, runaway and token-limit
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


def paired_counts(base: Sequence[bool], tuned: Sequence[bool]) -> tuple[int, int, int, int]:
    """(both right, only base right, only tuned right, both wrong)."""
    pairs = list(zip(base, tuned, strict=True))
    return (
        sum(b and t for b, t in pairs),
        sum(b and not t for b, t in pairs),
        sum(t and not b for b, t in pairs),
        sum(not b and not t for b, t in pairs),
    )


def _scope_stats(scope: str, part: pl.DataFrame) -> dict:
    """Gate statistics on `base_correct`/`sft_correct` (strict), plus lenient accuracy and QC rates."""
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.proportion import proportion_confint, proportion_effectsize

    base, tuned = part["base_correct"].to_list(), part["sft_correct"].to_list()
    both, only_base, only_tuned, neither = paired_counts(base, tuned)
    n = len(base)
    base_ok, tuned_ok = both + only_base, both + only_tuned
    base_lo, base_hi = proportion_confint(base_ok, n, alpha=0.05, method="wilson")
    tuned_lo, tuned_hi = proportion_confint(tuned_ok, n, alpha=0.05, method="wilson")
    p = mcnemar([[both, only_base], [only_tuned, neither]], exact=True).pvalue
    return {
        "scope": scope,
        "n": n,
        "base_correct": base_ok,
        "sft_correct": tuned_ok,
        "only_base_correct": only_base,
        "only_sft_correct": only_tuned,
        "base_accuracy": base_ok / n,
        "base_ci_low": base_lo,
        "base_ci_high": base_hi,
        "sft_accuracy": tuned_ok / n,
        "sft_ci_low": tuned_lo,
        "sft_ci_high": tuned_hi,
        "cohens_h": float(proportion_effectsize(tuned_ok / n, base_ok / n)),
        "mcnemar_p": float(p),
        **{
            f"{m}_{what}": float(part[f"{m}_{column}"].cast(pl.Float64).mean())
            for m in MODELS
            for what, column in (
                ("lenient_accuracy", "lenient"),
                ("runaway_rate", "runaway"),
                ("token_limit_rate", "token_limit"),
            )
            if f"{m}_{column}" in part.columns
        },
    }


def paired_stats(results: pl.DataFrame) -> pl.DataFrame:
    """One row overall and one per task type; per-type p-values also BH-adjusted (`p_bh`)."""
    from statsmodels.stats.multitest import multipletests

    if results.height == 0:
        raise ValueError("no paired results to analyse")
    rows = [_scope_stats(OVERALL, results)]
    for task_type in sorted(results["task_type"].unique().to_list()):
        rows.append(_scope_stats(task_type, results.filter(pl.col("task_type") == task_type)))
    adjusted = multipletests([r["mcnemar_p"] for r in rows[1:]], method="fdr_bh")[1]
    rows[0]["p_bh"] = rows[0]["mcnemar_p"]
    for row, p in zip(rows[1:], adjusted, strict=False):
        row["p_bh"] = float(p)
    return pl.DataFrame(rows)


def stage_gate(stats: pl.DataFrame, alpha: float) -> tuple[bool, dict]:
    """The stage passes when McNemar p < alpha overall and the adapter is more accurate than base,
    both by `GATE_JUDGE` (the `*_correct` columns)."""
    overall = stats.filter(pl.col("scope") == OVERALL).row(0, named=True)
    better = overall["sft_accuracy"] > overall["base_accuracy"]
    return bool(overall["mcnemar_p"] < alpha and better), overall
