"""The architecture part of the search space, encoded so that TPE can learn from it.

Within a budget d_model and n_layers are tied (a wider model is shallower), and the feasible
architectures are a thin set of the (d_model, n_layers) plane. Sampling them as one categorical
per depth (as before) hides any order from the sampler: TPE learns nothing about "wider is better"
from a trial at another depth. Here the sampler draws ordered numbers instead:

  log2_d_model  continuous, between the log2 of the narrowest and widest feasible width
  n_layers      integer, between the shallowest and deepest feasible depth
  log2_n_heads  continuous, between the log2 of the fewest and most heads

and the draw is snapped to the nearest feasible architecture of the grid (distance measured on
each axis scaled to [0, 1]; heads snap to the nearest valid count for the chosen width). Every
draw therefore lands in the grid, nearby draws give nearby architectures, and a forced extreme
enqueued by its values maps back to exactly itself. Architectures the memory plan marks
infeasible (`micro_batch == 0`) are not in the space at all.
"""

from __future__ import annotations

import math
from typing import TypedDict, cast

import numpy as np
import polars as pl

ARCH_PARAMS = ("log2_d_model", "n_layers", "log2_n_heads")
ENCODING_VERSION = 1  # bump when the encoding itself changes (part of the study version)


def feasible_archs(budget_grid: pl.DataFrame) -> pl.DataFrame:
    """The rows whose memory plan fits (all rows when the grid carries no plan)."""
    if "micro_batch" in budget_grid.columns:
        return budget_grid.filter(pl.col("micro_batch") > 0)
    return budget_grid


class ArchBounds(TypedDict):
    """(low, high) of each encoded parameter (`ARCH_PARAMS`)."""

    log2_d_model: tuple[float, float]
    n_layers: tuple[int, int]
    log2_n_heads: tuple[float, float]


class ArchSpace:
    """Bounds of the encoded parameters and the snapping back onto one budget's grid."""

    def __init__(self, budget_grid: pl.DataFrame):
        grid = feasible_archs(budget_grid)
        if grid.height == 0:
            raise ValueError(
                "no feasible architecture in this budget's grid (memory plan or tolerance)"
            )
        shapes = grid.select("d_model", "n_layers").unique().sort("d_model", "n_layers")
        self.d = shapes["d_model"].to_numpy().astype(float)
        self.n = shapes["n_layers"].to_numpy().astype(float)
        self.heads = {
            d: sorted(grid.filter(pl.col("d_model") == d)["n_heads"].unique().to_list())
            for d in shapes["d_model"].unique().to_list()
        }
        all_heads = grid["n_heads"]
        self.bounds: ArchBounds = {
            "log2_d_model": (math.log2(self.d.min()), math.log2(self.d.max())),
            "n_layers": (int(self.n.min()), int(self.n.max())),
            "log2_n_heads": (
                math.log2(cast(int, all_heads.min())),
                math.log2(cast(int, all_heads.max())),
            ),
        }

    def snap(self, log2_d_model: float, n_layers: int, log2_n_heads: float) -> dict:
        """The feasible (d_model, n_layers, n_heads) nearest to a draw."""
        (d_lo, d_hi), (n_lo, n_hi) = self.bounds["log2_d_model"], self.bounds["n_layers"]
        dist = ((np.log2(self.d) - log2_d_model) / max(d_hi - d_lo, 1e-9)) ** 2 + (
            (self.n - n_layers) / max(n_hi - n_lo, 1)
        ) ** 2
        i = int(np.argmin(dist))
        d_model, depth = int(self.d[i]), int(self.n[i])
        heads = min(self.heads[d_model], key=lambda h: (abs(math.log2(h) - log2_n_heads), h))
        return {"d_model": d_model, "n_layers": depth, "n_heads": heads}


def encode(arch: dict) -> dict:
    """An architecture as the sampler's parameters (for enqueueing a trial by value)."""
    return {
        "log2_d_model": math.log2(arch["d_model"]),
        "n_layers": int(arch["n_layers"]),
        "log2_n_heads": math.log2(arch["n_heads"]),
    }
