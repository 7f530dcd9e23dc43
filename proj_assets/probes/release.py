"""The release decision on the nested confirmation folds (`evaluation.nested_confirmation`).

The gains over the position baseline and over the shuffled-label control are tested on
chance-corrected PR-AUC (each scorer's PR-AUC minus its mean over label permutations of the test
fold, `gain_test.excess_average_precision`) by sign-flipping folds (`gain_test.gain_test`): on
null corpora the old rule (Student-t lower bound of raw PR-AUC gains) passed several times its
nominal 2.5%, this one does not (`bench/probe_gate_null.py`, docs/benchmarks.md).
"""

import math
import zlib
from collections.abc import Callable

import numpy as np
import polars as pl

from proj_assets.probes.evaluation import t_interval
from proj_assets.probes.gain_test import excess_average_precision, gain_test

ROLES = ("candidate", "baseline", "control")
PredictionsFor = Callable[[str, str], pl.DataFrame]  # (config_id, fold) -> its predictions


def _role_excess(predictions: pl.DataFrame, role: str, seed: int) -> float:
    wide = (
        predictions.filter(pl.col("role") == role)
        .pivot(on="probe_seed", index=["uid", "label"], values="probability")
        .sort("uid")
    )
    if wide.height == 0:
        raise ValueError(f"the predictions hold no {role} rows")
    scores = wide.drop("uid", "label").to_numpy().T
    return float(np.mean(excess_average_precision(scores, wide["label"].to_numpy(), seed)))


def chance_corrected(confirmed: pl.DataFrame, predictions_for: PredictionsFor) -> pl.DataFrame:
    """`confirmed` with `<role>_excess` (chance-corrected PR-AUC, seeds averaged) for every role
    and `chance` (the candidate's mean PR-AUC over label permutations: the chance level its raw
    PR-AUC is to be read against, not the base rate), from each fold's stored predictions of the
    scored config. Every role of a fold shares one set of permutations (seeded by the fold)."""
    rows = []
    for row in confirmed.iter_rows(named=True):
        predictions = predictions_for(row["scored_config"], row["fold"])
        seed = zlib.crc32(row["fold"].encode())
        excess = {f"{role}_excess": _role_excess(predictions, role, seed) for role in ROLES}
        rows.append({**row, **excess, "chance": row["candidate"] - excess["candidate_excess"]})
    extra = {f"{role}_excess": pl.Float64 for role in ROLES} | {"chance": pl.Float64}
    return pl.DataFrame(rows, schema={**confirmed.schema, **extra})


def confirmation_summary(confirmed: pl.DataFrame, margin: float = 0.0) -> dict:
    """Mean PR-AUC and 95% CI over confirmation folds of the candidate, baseline, control and the
    chance level; the gains over baseline and control as chance-corrected means with the sign-flip
    p-value against `margin` and the one-sided 97.5% lower bound."""
    out: dict = {"n_folds": confirmed.height}
    for name in (*ROLES, "chance"):
        values = confirmed[name].to_numpy()
        low, high = t_interval(values)
        mean = float(np.mean(values)) if len(values) else math.nan
        out[name] = {"mean": mean, "ci_low": low, "ci_high": high}
    for other in ("baseline", "control"):
        gains = (confirmed["candidate_excess"] - confirmed[f"{other}_excess"]).to_numpy()
        out[f"gain_vs_{other}"] = gain_test(gains, margin)
    return out


def flat_confirmation(summary: dict) -> dict[str, float]:
    """`confirmation_summary` as flat metadata entries (e.g. `baseline_pr_auc_ci_low`,
    `gain_vs_control_p_value`); booleans and non-finite values left out."""
    flat = {}
    for name, values in summary.items():
        if isinstance(values, dict):
            key = name if name.startswith("gain") else f"{name}_pr_auc"
            for stat, value in values.items():
                if not isinstance(value, bool) and np.isfinite(value):
                    flat[f"{key}_{stat}"] = round(float(value), 4)
    return flat


def release_decision(confirmed: pl.DataFrame, margin: float) -> dict:
    """On the chance-corrected confirmation folds (`chance_corrected`), the selected candidate's
    gain over the position baseline and over the shuffled-label control must both beat `margin`
    by the one-sided sign-flip test at 2.5%; `measured` is the smaller lower bound."""
    if confirmed.height == 0:
        return {
            "passed": False,
            "reason": "no complete stage-1 results to confirm",
            "measured": math.nan,
            "threshold": margin,
            "summary": {},
        }
    stats_ = confirmation_summary(confirmed, margin)
    vs_base, vs_ctrl = stats_["gain_vs_baseline"], stats_["gain_vs_control"]
    measured = min(vs_base["lower_bound"], vs_ctrl["lower_bound"])
    passed = vs_base["passed"] and vs_ctrl["passed"]
    fmt = lambda d: f"{d['mean']:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"  # noqa: E731
    gain = lambda d: f"{d['mean']:.3f} (p {d['p_value']:.3f}, lower bound {d['lower_bound']:.3f})"  # noqa: E731
    picks = confirmed["selected_config"].value_counts(sort=True)
    too_few = (
        f"; {confirmed.height} folds cannot pass (the sign-flip test needs at least 6)"
        if confirmed.height < 6
        else ""
    )
    reason = (
        f"on {confirmed.height} confirmation folds (winner chosen without the fold; most chosen "
        f"{picks['selected_config'][0]}, {picks['count'][0]} of {confirmed.height}): PR-AUC candidate "
        f"{fmt(stats_['candidate'])}, position baseline {fmt(stats_['baseline'])}, shuffled-label "
        f"control {fmt(stats_['control'])}, chance (label permutations) {fmt(stats_['chance'])}; "
        f"chance-corrected gain over baseline {gain(vs_base)}, over control {gain(vs_ctrl)}; both "
        f"must beat {margin} at one-sided 2.5% (sign-flip test over folds){too_few}"
    )
    return {
        "passed": bool(passed),
        "reason": reason,
        "measured": measured if np.isfinite(measured) else math.nan,
        "threshold": margin,
        "summary": stats_,
    }
