"""Loading a whole catalog's rows into the PostgreSQL catalog (`byline catalog copy`).

A mixin of `PostgresCatalog` (kept apart so each file stays readable); it uses only the catalog's transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ingest.models import source_key
from ingest.storage.catalog import CatalogError, Row

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.sql import Composed

# Advisory lock keys (64-bit) of the catalog: schema changes, and its feature transactions (run one at a time, as
# SQLite's are; a copy takes it too).
MIGRATION_LOCK = 0x6279_6C69_6E65  # "byline"
TRANSACTION_LOCK = MIGRATION_LOCK + 1


class PostgresImport:
    # PostgresCatalog's description of itself and its transactions
    where: str
    _transaction: Callable[..., AbstractContextManager[Connection[Any]]]

    def import_rows(self, batches: Iterable[tuple[str, list[str], list[Row]]]) -> dict[str, tuple[int, int]]:
        """Load (table, columns, rows) batches, as `SQLiteCatalog.export` gives them, into this catalog's empty
        tables, all in one transaction; returns (rows given, rows now there) per table, checked equal before
        committing. Identity columns are assigned here, and the triggers build the lexical index."""
        from psycopg import sql

        given: dict[str, int] = {}
        with self._transaction("copy rows") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (TRANSACTION_LOCK,))
            for table, columns, rows in batches:
                if table not in given:
                    given[table] = 0
                    self._check_empty_target(conn, table, columns)
                kept, values = _loadable(conn, table, columns, rows)
                statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, kept))
                )
                with conn.cursor() as cursor, cursor.copy(statement) as copy:
                    for value in values:
                        copy.write_row(value)
                given[table] += len(rows)
            counts = {
                table: (n, row(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))[0])
                for table, n in given.items()
            }
            wrong = {table: pair for table, pair in counts.items() if pair[0] != pair[1]}
            if wrong:
                raise CatalogError(f"copy into {self.where} rolled back: row counts differ: {wrong}")
        return counts

    def _check_empty_target(self, conn: Connection[Any], table: str, columns: Sequence[str]) -> None:
        from psycopg import sql

        have = {row[0] for row in conn.execute(_COLUMNS, (table,))}
        if not have:
            raise CatalogError(f"the catalog at {self.where} has no table {table}: its feature was not set up")
        if missing := [c for c in columns if c not in have]:
            raise CatalogError(f"the catalog at {self.where} has no column {', '.join(missing)} in {table}")
        if conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(table))).fetchone():
            raise CatalogError(
                f"the catalog at {self.where} already holds rows in {table}: copy only into an empty catalog"
            )


def row(conn: Connection[Any], sql: str | Composed, *params: object) -> Row:
    """The one row of a statement that returns one."""
    found = conn.execute(sql, params).fetchone()
    assert found is not None
    return tuple(found)


_COLUMNS = """SELECT column_name, is_identity FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = %s"""


def _loadable(
    conn: Connection[Any], table: str, columns: list[str], rows: list[Row]
) -> tuple[list[str], list[Sequence[Any]]]:
    """The columns and rows to load: without the identity columns, which this database numbers itself, and with
    each article's `source_key` (Python's casefold: SQLite's catalog keeps none)."""
    identity = {row[0] for row in conn.execute(_COLUMNS, (table,)) if row[1] == "YES"}
    keep = [i for i, column in enumerate(columns) if column not in identity]
    kept = [columns[i] for i in keep]
    values: list[Sequence[Any]] = [[row[i] for i in keep] for row in rows]
    if table == "articles" and "source_key" not in kept:
        source = kept.index("source")
        kept.append("source_key")
        values = [[*row, source_key(row[source])] for row in values]
    return kept, values
