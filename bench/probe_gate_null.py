"""False-positive rate of the release gate's gain tests on null corpora (labels independent of
everything), for the old rule (Student-t lower bound of fold gains > 0) and the new one (sign-flip
test over folds, `proj_assets.probes.gain_test`), one-sided at a nominal 2.5%.

Each null corpus has `--folds` problems (leave-one-problem-out folds) of 40-160 sentences with
labels drawn independently at a base rate of 0.1-0.4 per problem. On each test fold we score:
- the position baseline: a random monotone function of position features, so sentences at the same
  index of traces of equal length tie, as the real baseline's do;
- the control and every candidate seed: continuous scores independent of the labels (a shared fold
  component, a per-config one and per-seed noise, so configs and seeds correlate as trained probes
  of one fold do);
and compute PR-AUC as scikit-learn's `average_precision_score` does (`trainer.py`; the vectorized
`gain_test.average_precision_rows` is tested equal to it). The fold rows and predictions then go
through the platform's own `evaluation.nested_confirmation` (the config chosen without each fold),
`release.chance_corrected` (reading the predictions as the gate does) and both rules.

`--real N` also runs N null corpora through the real fold code: the demo corpus generator's
traces with labels redrawn independently, random token activations, `folds.build_fold` and
`fold_run.run_group_fold` (the trainer and the scikit-learn references) for 4 linear-probe configs
x 3 seeds per fold (slow: about half a minute per corpus on this VM).

    PYTHONPATH=. .venv/bin/python bench/probe_gate_null.py --corpora 400
"""

import argparse
import time
from functools import partial

import numpy as np
import polars as pl
from statsmodels.stats.proportion import proportion_confint

from proj_assets.probes.evaluation import nested_confirmation, t_interval
from proj_assets.probes.gain_test import ALPHA, average_precision_rows
from proj_assets.probes.release import chance_corrected, confirmation_summary
from proj_assets.probes.sweep_spec import stage1_id


def _position_scores(rng: np.random.Generator, n: int) -> np.ndarray:
    lengths = rng.integers(8, 14, size=n // 8 + 2)  # traces of few distinct lengths -> ties
    index = np.concatenate([np.arange(length) for length in lengths])[:n]
    length = np.concatenate([np.full(length, length) for length in lengths])[:n]
    rel = index / (length - 1)
    features = np.stack([rel, rel**2, np.log1p(index), np.log(length), rel == 1.0], axis=1)
    return 1 / (1 + np.exp(-(features @ rng.normal(scale=0.3, size=5))))


def null_fold_rows(
    rng: np.random.Generator, n_folds: int, n_configs: int, n_seeds: int
) -> tuple[list[dict], dict[tuple[str, str], pl.DataFrame]]:
    """Fold result rows (as fold_run writes them) of one null corpus, and its predictions by
    (config_id, fold) as the artifacts hold them."""
    rows, predictions = [], {}
    config_ids = [f"{c:012x}" for c in range(n_configs)]
    for f in range(n_folds):
        fold, n = f"g{f}", int(rng.integers(40, 161))
        y = rng.random(n) < rng.uniform(0.1, 0.4)
        if not y.any():
            y[rng.integers(n)] = True
        shared = rng.normal(size=n)
        refs = [("baseline", "position_baseline", 0, _position_scores(rng, n))]
        refs += [("control", "lr", s, rng.normal(size=n)) for s in range(3)]
        for config_id in config_ids:
            own = shared + rng.normal(size=n)
            fits = refs + [
                ("candidate", "linear_probe", s, own + 0.5 * rng.normal(size=n))
                for s in range(n_seeds)
            ]
            frames = []
            for role, probe, seed, score in fits:
                rows.append(
                    {
                        "config_id": config_id,
                        "stage": 1,
                        "role": role,
                        "probe": probe,
                        "fold": fold,
                        "probe_seed": seed,
                        "pr_auc": float(average_precision_rows(score, y)[0]),
                        "roc_auc": 0.5,
                        "base_rate": float(y.mean()),
                    }
                )
                frames.append(
                    pl.DataFrame(
                        {
                            "role": role,
                            "probe_seed": seed,
                            "uid": np.arange(n),
                            "label": y.astype(np.int64),
                            "probability": score,
                        }
                    )
                )
            predictions[(config_id, fold)] = pl.concat(frames)
    return rows, predictions


def _lookup(predictions: dict, config_id: str, fold: str) -> pl.DataFrame:
    return predictions[(config_id, fold)]


def real_null_corpus(rng: np.random.Generator, n_folds: int, seed: int):
    """Fold rows and predictions of one null corpus through build_fold and run_group_fold."""
    from proj_assets.probes.corpus import coerce_corpus, with_sentence_uid
    from proj_assets.probes.corpus_generator import generate_corpus
    from proj_assets.probes.fold_run import run_group_fold
    from proj_assets.probes.folds import build_fold, lopo_folds

    corpus = with_sentence_uid(coerce_corpus(generate_corpus(n_folds, 3, 0.0, seed=seed), "null"))
    labels = rng.random(corpus.height) < 0.3
    labels[corpus.with_row_index().group_by("group_id").agg(pl.col("index").first())["index"]] = (
        True
    )
    corpus = corpus.with_columns(label=pl.Series(labels.astype(np.int64)))
    lengths = rng.integers(2, 6, size=corpus.height)
    index = pl.DataFrame(
        {"uid": corpus["uid"], "offset": np.cumsum(lengths) - lengths, "length": lengths}
    )
    array = rng.normal(size=(int(lengths.sum()), 32)).astype(np.float16)
    configs = [
        {
            "config_id": f"{i:012x}",
            "stage": 1,
            "probe_type": "linear_probe",
            "layer": 0,
            "pooling": "mean",
            "learning_rate": lr,
            "weight_decay": 0.0,
            "epochs": epochs,
            "n_heads": 1,
            "batch_size": 256,
            "n_seeds": 3,
        }
        for i, (lr, epochs) in enumerate([(0.01, 20), (0.01, 40), (0.03, 20), (0.03, 40)])
    ]
    rows, predictions = [], {}
    for fold in lopo_folds(corpus):
        data = build_fold(corpus, array, index, fold, pooling="mean", need_tokens=False)
        metrics, preds = run_group_fold(configs, data, fold, base_seed=seed)
        rows.append(metrics)
        for (config_id,), frame in preds.partition_by("config_id", as_dict=True).items():
            predictions[(config_id, fold)] = frame
    return pl.concat(rows), predictions


def rules(confirmed: pl.DataFrame) -> dict[str, bool]:
    """Whether each rule calls each gain significant (margin 0) on one corpus's confirmation
    folds: old = Student-t lower bound of raw PR-AUC gains > 0, new = release.confirmation_summary
    (chance-corrected gains, sign-flip test)."""
    new = confirmation_summary(confirmed)
    out = {}
    for other in ("baseline", "control"):
        gains = (confirmed["candidate"] - confirmed[other]).to_numpy()
        out[f"old vs {other}"] = bool(t_interval(gains)[0] > 0)
        out[f"new vs {other}"] = bool(new[f"gain_vs_{other}"]["passed"])
    out["old gate"] = out["old vs baseline"] and out["old vs control"]
    out["new gate"] = out["new vs baseline"] and out["new vs control"]
    return out


def report(calls: list[dict[str, bool]], label: str) -> None:
    n = len(calls)
    if not n:
        return
    print(f"\n{label}: {n} null corpora, nominal one-sided {ALPHA:.1%}")
    for rule in calls[0]:
        hits = sum(c[rule] for c in calls)
        low, high = proportion_confint(hits, n, alpha=0.05, method="wilson")
        print(f"  {rule:<16} FPR {hits / n:6.1%}  95% CI [{low:.1%}, {high:.1%}]  ({hits}/{n})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", type=int, default=400)
    parser.add_argument("--folds", type=int, default=8)
    parser.add_argument("--configs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--real", type=int, default=0, help="null corpora through the fold code")
    args = parser.parse_args()
    rng = np.random.default_rng(20)
    start, calls = time.perf_counter(), []
    for _ in range(args.corpora):
        rows, predictions = null_fold_rows(rng, args.folds, args.configs, args.seeds)
        confirmed = nested_confirmation(pl.DataFrame(rows), stage1_id)
        corrected = chance_corrected(confirmed, partial(_lookup, predictions))
        calls.append(rules(corrected))
    report(calls, f"fold-level simulation, {args.folds} folds x {args.configs} configs")
    print(f"  ({time.perf_counter() - start:.0f} s)")
    if args.real:
        start, calls = time.perf_counter(), []
        for seed in range(args.real):
            results, predictions = real_null_corpus(rng, args.folds, seed)
            confirmed = nested_confirmation(results, stage1_id)
            calls.append(rules(chance_corrected(confirmed, partial(_lookup, predictions))))
        report(
            calls, f"real fold code (build_fold, run_group_fold), {args.folds} folds x 4 configs"
        )
        print(f"  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
