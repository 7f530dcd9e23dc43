"""The DuckDB warehouse: one file, one writer process at a time.

Tabular assets go through `DuckDBPolarsIOManager` (see `warehouse_io_manager`); code that needs SQL
(reading a table outside the I/O manager, review records) uses the `Warehouse` resource, which
inherits the library's connect-with-backoff on a locked file.
"""

from pathlib import Path

import polars as pl
from dagster_duckdb import DuckDBResource
from dagster_duckdb_polars import DuckDBPolarsIOManager


def _ensure_parent(database: str) -> None:
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


class Warehouse(DuckDBResource):
    """DuckDB warehouse file (`database` is its path). SQL here is always parameterised."""

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        _ensure_parent(self.database)
        with self.get_connection() as conn:
            return conn.execute(sql, params or []).pl()

    def table_exists(self, schema: str, table: str) -> bool:
        found = self.query(
            "select count(*) as n from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        )
        return found["n"][0] > 0


def warehouse_path(profile_name: str, root: Path) -> Path:
    """Each profile has its own warehouse file under the data folder."""
    return root / "warehouse" / f"{profile_name}.duckdb"


def warehouse_io_manager(database: str) -> DuckDBPolarsIOManager:
    """The I/O manager for every tabular asset; it stores `[domain, layer, name]` per the
    `schema` metadata that `proj_assets.shared.conventions.table_metadata` sets."""
    _ensure_parent(database)
    return DuckDBPolarsIOManager(database=database)
