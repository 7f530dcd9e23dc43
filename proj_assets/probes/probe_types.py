"""Names of the probe types (kept apart from the torch code so specs load without torch)."""

PROBE_TYPES = (
    "position_baseline",
    "linear_probe",
    "attention_probe",
    "multimax_probe",
    "activations_plus_position",
)
CANDIDATE_PROBES = PROBE_TYPES[
    1:
]  # position_baseline is trained in every config-fold as the baseline
TOKEN_PROBES = ("attention_probe", "multimax_probe")  # pool over tokens themselves
