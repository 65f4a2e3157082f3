"""Which catalog a Byline uses: SQLite under its home by default, PostgreSQL when `store.database_url` is set."""

from __future__ import annotations

from pathlib import Path

from ingest.config import StoreSettings
from ingest.storage.catalog import Catalog, CatalogError


def open_catalog(settings: StoreSettings, home: Path) -> Catalog:
    """The catalog the settings name, opened (and migrated); CatalogError, one line, when it cannot be."""
    if settings.database_url is None:
        from ingest.storage.sqlite import SQLiteCatalog

        return SQLiteCatalog(home / "catalog.sqlite")
    url = settings.database_url.get_secret_value()
    if not url.startswith(("postgresql://", "postgres://")):
        raise CatalogError("store.database_url must be a postgresql:// URL")
    try:
        from ingest.storage.postgres import PostgresCatalog
    except ImportError as exc:
        raise CatalogError(
            f"the PostgreSQL catalog needs psycopg ({exc.name} is missing): pip install 'byline[postgres]'"
        ) from exc
    return PostgresCatalog(url)
