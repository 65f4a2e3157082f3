"""Reading a whole SQLite catalog out, to move it into another (`byline catalog copy`).

A mixin of `SQLiteCatalog` (kept apart so each file stays readable); it uses only the catalog's connection and
its lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Generator
from pathlib import Path

from ingest.storage.catalog import CatalogError, Row


class SQLiteExport:
    # SQLiteCatalog's file, connection and lock
    path: Path
    conn: sqlite3.Connection
    _lock: threading.RLock

    def export(self, batch: int = 1000) -> Generator[tuple[str, list[str], list[Row]]]:
        """Every row of the tables holding data, core and features' alike, as (table, columns, a batch of
        rows), each table after those it references, all from one snapshot (close the iterator when stopping
        early). Left out: the migrations' bookkeeping and the lexical index, which the chunks give."""
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                for table in self._data_tables():
                    columns = [row[1] for row in self.conn.execute(f'PRAGMA table_info("{table}")')]
                    listed = ", ".join(f'"{column}"' for column in columns)
                    last, rows = None, None
                    while rows is None or len(rows) == batch:  # an empty table gives one empty batch
                        rows = self.conn.execute(
                            f'SELECT rowid, {listed} FROM "{table}" WHERE ? IS NULL OR rowid > ? '
                            "ORDER BY rowid LIMIT ?",
                            (last, last, batch),
                        ).fetchall()
                        last = rows[-1][0] if rows else last
                        yield table, columns, [tuple(row)[1:] for row in rows]
            finally:
                self.conn.execute("COMMIT")

    def _data_tables(self) -> list[str]:
        rows = self.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
        virtual = [name for name, sql in rows if sql.upper().startswith("CREATE VIRTUAL TABLE")]
        tables = [
            name
            for name, _ in rows
            if name != "migrations"
            and not name.startswith("sqlite_")
            and not any(name == v or name.startswith(v + "_") for v in virtual)
        ]
        references = {
            table: {row[2] for row in self.conn.execute(f'PRAGMA foreign_key_list("{table}")')} for table in tables
        }
        ordered: list[str] = []
        while len(ordered) < len(tables):
            ready = [t for t in tables if t not in ordered and references[t] <= {*ordered, t}]
            if not ready:
                raise CatalogError(f"the catalog {self.path} has tables that reference each other")
            ordered += ready
        return ordered

    def applied_migrations(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self.conn.execute("SELECT name FROM migrations ORDER BY name")]
