"""Pure loading code (no dagster import): what the resource classes call, and what core modules
import directly so they stay free of Dagster. `proj_resources.hashing` is pure too."""
