"""Moving a catalog from SQLite to PostgreSQL (`byline catalog copy`): every table, feature state included, in
one transaction on the target, checked by counting rows before it commits."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing

from ingest.storage.catalog import CatalogError, Migration
from ingest.storage.postgres import PostgresCatalog
from ingest.storage.sqlite import SQLiteCatalog
from ingest.storage.sqlite_schema import CORE_MIGRATIONS


def copy_catalog(
    source: SQLiteCatalog, target: PostgresCatalog, features: Sequence[Migration], batch: int = 1000
) -> dict[str, tuple[int, int]]:
    """Copy `source` into the empty `target`; returns (rows read, rows written) per table.

    `features` are the migrations of every feature this Byline knows: the target applies those the source has,
    so the features' tables exist before their rows arrive. A source with a migration none of them names was
    written by a newer Byline (or a plugin this one lacks) and is refused, as is a target holding any rows.
    """
    known = {migration.name: migration for migration in features}
    core = {migration.name for migration in CORE_MIGRATIONS}
    applied = source.applied_migrations()
    if unknown := [name for name in applied if name not in known and name not in core]:
        raise CatalogError(
            f"the catalog {source.path} has migrations this Byline does not know ({', '.join(unknown)}): "
            "copy it with the Byline that wrote it"
        )
    target.apply_migrations([migration for migration in features if migration.name in applied])
    with closing(source.export(batch)) as batches:
        return target.import_rows(batches)
