"""The stage gate's error rates on simulated paired outcomes (proj_assets/sft/gate_simulation.py):
how often it passes with no true difference (must be at most alpha), how often it passes with a
real gain (power), and the coverage of the per-arm Wilson 95% intervals.

    PYTHONPATH=. .venv/bin/python bench/sft_gate_null.py [reps]
"""

import sys
import time

from statsmodels.stats.proportion import proportion_confint

from proj_assets.sft.gate_simulation import gate_pass_rate, wilson_coverage

ALPHAS = (0.05, 0.01)
N_ITEMS = (100, 200)  # the tiny test set is 20 items, the demo's 200


def main(reps: int) -> None:
    start = time.perf_counter()
    for n in N_ITEMS:
        for shift in (0.0, 0.05, 0.10, 0.15):
            passes = gate_pass_rate(reps, n, ALPHAS, shift=shift, seed=int(shift * 100) + n)
            for alpha, k in passes.items():
                low, high = proportion_confint(k, reps, alpha=0.05, method="beta")
                kind = "false-positive rate" if shift == 0 else "power"
                print(
                    f"n={n:4d} shift={shift:.2f} alpha={alpha:.2f}: {kind} {k / reps:.4f} "
                    f"(95% CI {low:.4f}-{high:.4f}, {k}/{reps})"
                )
    for n in N_ITEMS:
        for accuracy in (0.05, 0.1, 0.35, 0.5):
            coverage = wilson_coverage(20000, n, accuracy, seed=n)
            print(f"Wilson 95% coverage n={n} accuracy={accuracy}: {coverage:.4f} (20000 draws)")
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
