"""The gate's references, fit once per fold independently of any candidate config.

- position baseline: logistic regression on the position features;
- shuffled-label control: logistic regression on mean-pooled activations of the layer, trained on
  within-train permutations of the labels (one per control seed).

Both are scikit-learn `LogisticRegressionCV` fits to convergence (lbfgs, generous max_iter) with
C chosen by inner cross-validation over the *training problems* (GroupKFold, PR-AUC scoring),
class-balanced weights. They do not depend on the candidate's learning rate, epochs or probe type,
so every config of a fold (and layer) is compared against the same references; the asset caches
them by content (`reference_spec`) so they are fit once and reused.
"""

import numpy as np
import polars as pl

REFERENCE_VERSION = "lr-cv-1"
C_GRID = np.logspace(-3, 2, 6)
MAX_ITER = 5000


def reference_spec(
    corpus_hash: str, fold: str, activations_hash: str, control_seeds: list[int]
) -> dict:
    """What determines a fold's references; its hash names their cached file."""
    return {
        "version": REFERENCE_VERSION,
        "corpus_hash": corpus_hash,
        "fold": fold,
        "activations": activations_hash,
        "control_seeds": [int(s) for s in control_seeds],
        "c_grid": [float(c) for c in C_GRID],
        "max_iter": MAX_ITER,
    }


def shuffled_labels(y: np.ndarray, seeds: list[int]) -> np.ndarray:
    """One within-train permutation of the labels per seed: the shuffled-label control."""
    return np.stack([np.random.default_rng(10_007 + int(s)).permutation(y) for s in seeds])


def fit_logistic_cv(x: np.ndarray, y: np.ndarray, groups: np.ndarray):
    """Class-balanced logistic regression, C by inner GroupKFold over training problems (PR-AUC)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from threadpoolctl import threadpool_limits

    n_splits = min(3, len(np.unique(groups)))
    if n_splits < 2:
        raise ValueError(
            "the references need at least two training problems for inner cross-validation"
        )
    splits = list(GroupKFold(n_splits).split(x, y, groups))
    model = LogisticRegressionCV(
        Cs=C_GRID,
        l1_ratios=(0.0,),
        use_legacy_attributes=False,
        cv=splits,
        scoring="average_precision",
        class_weight="balanced",
        max_iter=MAX_ITER,
    )
    with threadpool_limits(1):  # small problems: threads only contend with the other partitions
        model.fit(x, y)
    return model


def fit_references(
    position_train: np.ndarray,
    pooled_train: np.ndarray | None,
    y_train: np.ndarray,
    groups_train: np.ndarray,
    position_test: np.ndarray,
    pooled_test: np.ndarray | None,
    control_seeds: list[int],
) -> pl.DataFrame:
    """Test-set probabilities of the baseline (probe_seed 0) and of one control per seed, with the
    chosen C and whether the solver converged: one row per role x seed x test sentence index."""
    frames = []

    def add(role: str, seed: int, model, x_test: np.ndarray) -> None:
        converged = bool(np.all(np.asarray(model.n_iter_) < MAX_ITER))
        frames.append(
            pl.DataFrame(
                {
                    "role": role,
                    "probe_seed": seed,
                    "row": np.arange(len(x_test)),
                    "probability": model.predict_proba(x_test)[:, 1],
                    "c": float(np.ravel(model.C_)[0]),
                    "converged": converged,
                }
            )
        )

    add("baseline", 0, fit_logistic_cv(position_train, y_train, groups_train), position_test)
    if pooled_train is not None:
        assert pooled_test is not None  # the pooled arrays are set together (folds.py)
        for seed, shuffled in zip(
            control_seeds, shuffled_labels(y_train, control_seeds), strict=False
        ):
            add(
                "control",
                int(seed),
                fit_logistic_cv(pooled_train, shuffled, groups_train),
                pooled_test,
            )
    return pl.concat(frames)
