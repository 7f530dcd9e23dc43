"""The exact parameter count of `model.TimeSeriesTransformer`, without importing torch (the grid,
the profile's budget validation and the checks need it when the code location loads)."""


def count_parameters(n_features: int, d_model: int, n_layers: int, ffn_mult: int = 4) -> int:
    """Trainable parameters of `TimeSeriesTransformer`, term by term.

    input projection  n_features*d + d
    per layer         attention: in-proj 3d^2 + 3d, out-proj d^2 + d; feed-forward: d*f + f + f*d + d;
                      two LayerNorms 4d   (f = ffn_mult * d)
    final LayerNorm   2d;   head   d + 1
    """
    d, f = d_model, ffn_mult * d_model
    per_layer = (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d
    return (n_features * d + d) + n_layers * per_layer + 2 * d + (d + 1)
