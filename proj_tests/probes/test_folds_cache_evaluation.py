"""LOPO folds, the activation cache key and integrity checks, aggregation, screening and the gate."""

import numpy as np
import polars as pl
import pytest
from statsmodels.stats.weightstats import DescrStatsW

from proj_assets.probes.activation_cache import (
    CacheWriter,
    cache_spec,
    index_problems,
    nonfinite_rows,
    open_cache,
)
from proj_assets.probes.corpus import coerce_corpus, with_sentence_uid
from proj_assets.probes.corpus_generator import generate_corpus
from proj_assets.probes.evaluation import (
    aggregate,
    final_candidates,
    nested_confirmation,
    screen,
    t_interval,
)
from proj_assets.probes.folds import build_fold, lopo_folds, split
from proj_assets.probes.quality import leakage_rows
from proj_assets.probes.sweep_spec import stage1_id, stage2_id
from proj_resources.hashing import canonical_hash


def test_lopo_folds_never_share_a_group():
    corpus = with_sentence_uid(coerce_corpus(generate_corpus(4, 2, 0.0, seed=0), "g"))
    folds = lopo_folds(corpus)
    assert folds == sorted(corpus["group_id"].unique().to_list())
    for fold in folds:
        train, test = split(corpus, fold)
        assert set(test["group_id"]) == {fold} and fold not in set(train["group_id"])
        assert train.height + test.height == corpus.height
        data = build_fold(corpus, None, None, fold, pooling=None, need_tokens=False)
        assert len(data.y_test) == test.height
    with pytest.raises(KeyError, match="not a group"):
        split(corpus, "problem_99")


def test_leakage_rows_catch_a_fold_trained_on_its_own_group():
    good = pl.DataFrame({"fold": ["g1"], "test_groups": ["g1"], "train_groups": ["g0,g2"]})
    leaky = good.with_columns(train_groups=pl.lit("g0,g1,g2"))
    preds = pl.DataFrame({"fold": ["g1", "g1"], "group_id": ["g1", "g2"]})
    assert leakage_rows(good, preds.head(1)).height == 0
    assert leakage_rows(leaky, preds.head(1)).height == 1
    assert leakage_rows(good, preds)["where"].to_list() == ["prediction row"]


BASE = dict(
    model_id="m",
    revision="r1",
    layer=3,
    corpus_hash="c1",
    max_tokens=24,
    context="sentence",
    tokenizer_hash="t1",
    extraction_version="v1",
    max_context=512,
)


@pytest.mark.parametrize(
    "field, other",
    [
        ("model_id", "m2"),
        ("revision", "r2"),
        ("layer", 4),
        ("corpus_hash", "c2"),
        ("max_tokens", 32),
        ("context", "trace"),
        ("tokenizer_hash", "t2"),
        ("extraction_version", "v2"),
        ("max_context", 256),
    ],
)
def test_cache_key_changes_with_every_input_and_only_then(field, other):
    key = canonical_hash(cache_spec(**BASE))
    assert canonical_hash(cache_spec(**BASE)) == key
    assert canonical_hash(cache_spec(**{**BASE, field: other})) != key


def test_cache_round_trip_and_integrity_problems(tmp_path):
    uids, lengths = np.array([0, 1, 2]), np.array([2, 3, 1])
    writer = CacheWriter(tmp_path, cache_spec(**BASE), uids, lengths, hidden=4)
    for uid, n in zip(uids, lengths, strict=False):
        writer.put(int(uid), np.full((n, 4), uid, dtype=np.float32))
    writer.close()
    array, index, meta = open_cache(tmp_path)
    assert array.shape == (6, 4) and meta["spec"]["layer"] == 3 and array.dtype == np.float16
    assert float(array[2, 0]) == 1.0
    assert index_problems(index, 6, {0, 1, 2}).height == 0
    assert nonfinite_rows(array, index).height == 0
    gap = index.with_columns(offset=pl.Series([0, 3, 5]))
    assert "gap or overlap" in index_problems(gap, 6, {0, 1, 2})["problem"].to_list()
    assert index_problems(index, 6, {0, 1, 2, 3})["problem"].to_list() == [
        "sentence missing from index"
    ]
    broken = np.array(array, dtype=np.float32)
    broken[4, 1] = np.nan
    assert nonfinite_rows(broken, index)["uid"].to_list() == [1]


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda f: f.write_bytes(f.read_bytes()[:-8]), "truncated"),
        (lambda f: f.write_bytes(b"\x7f" + f.read_bytes()[1:]), "corrupted"),
        (lambda f: f.unlink(), "missing"),
    ],
)
def test_a_damaged_cache_is_detected_and_never_read(tmp_path, damage, problem):
    from proj_assets.probes.activation_cache import ACTIVATIONS_FILE, CacheError, cache_is_valid

    writer = CacheWriter(tmp_path, cache_spec(**BASE), np.array([0, 1]), np.array([2, 2]), hidden=4)
    for uid in (0, 1):
        writer.put(uid, np.full((2, 4), uid + 1, dtype=np.float32))
    writer.close()
    assert cache_is_valid(tmp_path)
    damage(tmp_path / ACTIVATIONS_FILE)
    assert not cache_is_valid(tmp_path)
    with pytest.raises(CacheError, match=problem):
        open_cache(tmp_path)


def test_t_interval_matches_statsmodels():
    values = np.array([0.61, 0.72, 0.55, 0.68, 0.70])
    assert t_interval(values) == pytest.approx(DescrStatsW(values).tconfint_mean(alpha=0.05))


def _results(
    gain: float, n_folds: int = 5, seeds=(0, 1), config_id: str = "aaaaaaaaaaaa", stage: int = 1
) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for f in range(n_folds):
        base = 0.5 + 0.05 * rng.normal()
        for s in seeds:
            for role, value in (("candidate", base + gain), ("baseline", base), ("control", 0.4)):
                rows.append(
                    {
                        "config_id": config_id,
                        "fold": f"g{f}",
                        "stage": stage,
                        "role": role,
                        "probe": "linear_probe" if role != "baseline" else "position_baseline",
                        "probe_seed": s,
                        "pr_auc": value + 0.01 * rng.normal(),
                        "roc_auc": 0.6,
                        "base_rate": 0.4,
                    }
                )
    return pl.DataFrame(rows)


def test_nested_confirmation_does_not_reward_the_luckiest_of_many_configs():
    """40 configs with no real gain: the best of them, scored on the folds that picked it, looks
    better than the baseline; confirmed on folds that did not pick it, it does not."""
    rng = np.random.default_rng(1)
    base = {f"g{f}": 0.5 + 0.05 * rng.normal() for f in range(8)}
    rows = [
        {
            "config_id": f"{c:012x}",
            "fold": fold,
            "stage": 1,
            "role": role,
            "probe": "linear_probe",
            "probe_seed": 0,
            "pr_auc": value + (0.08 * rng.normal() if role == "candidate" else 0.0),
            "roc_auc": 0.6,
            "base_rate": 0.4,
        }
        for c in range(40)
        for fold, value in base.items()
        for role in ("candidate", "baseline", "control")
    ]
    results = pl.DataFrame(rows)
    naive = (
        final_candidates(aggregate(results), stage1_id)
        .sort("pr_auc_mean", descending=True)
        .row(0, named=True)
    )
    confirmed = nested_confirmation(results, stage1_id)
    honest = (confirmed["candidate"] - confirmed["baseline"]).to_numpy()
    assert (
        naive["delta_vs_baseline"] > 0.03
    )  # selection bias of the best-of-40 (no config has a real gain)
    assert honest.mean() < naive["delta_vs_baseline"] - 0.02
    assert not t_interval(honest)[0] > 0
    for row in confirmed.iter_rows(named=True):  # each fold's winner was chosen without it
        others = results.filter((pl.col("fold") != row["fold"]) & (pl.col("role") == "candidate"))
        per_config = [
            (t_interval(g["pr_auc"].to_numpy())[0], g["pr_auc"].mean(), c)
            for (c,), g in others.group_by("config_id")
        ]
        best = max(per_config, key=lambda t: (t[0], t[1]))[2]  # the screening rule
        assert row["selected_config"] == best


def test_screening_promotes_top_k_once_and_converges():
    stage1 = pl.concat(
        [
            _results(0.15, config_id="aaaaaaaaaaaa"),
            _results(0.05, config_id="bbbbbbbbbbbb"),
            _results(0.10, config_id="cccccccccccc", n_folds=3),
        ]
    )
    first = screen(aggregate(stage1), n_folds=5, top_k=1, stage2_seeds=4, id_fn=stage2_id)
    promoted = first.filter(pl.col("promoted"))["stage2_config_id"].to_list()
    assert promoted == ["aaaaaaaaaaaa-s2n4"]
    assert first.filter(pl.col("config_id") == "cccccccccccc")["complete"].to_list() == [False]
    stage2 = _results(0.15, seeds=(0, 1, 2, 3), config_id=promoted[0], stage=2)
    both = aggregate(pl.concat([stage1, stage2]))
    again = screen(both, n_folds=5, top_k=1, stage2_seeds=4, id_fn=stage2_id)
    assert again.filter(pl.col("promoted"))["stage2_config_id"].to_list() == promoted  # nothing new
    finals = final_candidates(both, stage1_id)
    assert finals["config_id"][0] == promoted[0] and finals["n_fits"][0] == 20
