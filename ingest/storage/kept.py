"""The catalog's copy of the vectors: filled from Chroma for chunks written before it was kept, and what an
empty collection is filled from when the vector index is found damaged (see `ingest.storage.vectors`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from more_itertools import batched

from ingest.models import Article, Chunk
from ingest.storage.catalog import Catalog, StoredVector
from ingest.storage.vectors import StoreError, Vectors, chunk_metadata, vector_bytes, vector_from

if TYPE_CHECKING:
    from collections.abc import Sequence

    from chromadb.api.models.Collection import Collection


def keep_vectors(catalog: Catalog, index: Vectors, collection_name: str) -> None:
    """Copy into the catalog the vectors of chunks written before the catalog kept them."""
    missing = catalog.chunks_without_vectors(collection_name)
    for batch in batched(missing, 1000):
        found = _get(index, list(batch))
        embeddings = found.get("embeddings")
        if embeddings is None:
            continue
        metas = found.get("metadatas") or [None] * len(found["ids"])
        catalog.store_vectors(
            collection_name,
            [
                (chunk_id, StoredVector(vector_bytes(vector), _embed_hash(meta)))
                for chunk_id, vector, meta in zip(found["ids"], embeddings, metas, strict=True)
            ],
        )


def refill(catalog: Catalog, collection_name: str, collection: Collection, batch: int) -> int:
    """Fill an empty collection with the vectors the catalog keeps, `batch` records a write; returns how many."""
    put = 0
    for articles in batched(catalog.indexed_article_ids(collection_name), 64):
        put += _refill(catalog, collection_name, collection, catalog.indexed_chunks(collection_name, articles), batch)
    # Written meanwhile by a writer that had upserted before the index was lost:
    missing = catalog.chunk_ids(collection_name) - set(collection.get(include=[])["ids"])
    late = sorted({chunk_id.split(":", 1)[0] for chunk_id in missing})
    return put + _refill(catalog, collection_name, collection, catalog.indexed_chunks(collection_name, late), batch)


def _refill(
    catalog: Catalog,
    collection_name: str,
    collection: Collection,
    written: Sequence[tuple[Article, Sequence[Chunk]]],
    batch: int,
) -> int:
    pairs = [(article, chunk) for article, chunks in written for chunk in chunks]
    kept = catalog.stored_vectors(collection_name, [c.id for _, c in pairs])
    if len(kept) < len(pairs):
        raise StoreError(f"the catalog keeps no vector for {len(pairs) - len(kept)} chunks")
    for part in batched(pairs, batch):
        collection.upsert(
            ids=[c.id for _, c in part],
            embeddings=np.stack([vector_from(kept[c.id].vector) for _, c in part]),
            documents=[c.text for _, c in part],
            metadatas=[chunk_metadata(a, c, kept[c.id].embed_hash) for a, c in part],
        )
    return len(pairs)


def _get(index: Vectors, chunk_ids: list[str]) -> Any:
    def get(collection: Collection) -> Any:
        return collection.get(ids=chunk_ids, include=["embeddings", "metadatas"])

    return index.read("read vectors", get)


def _embed_hash(meta: Any) -> str | None:
    value = (meta or {}).get("embed_hash")
    return value if isinstance(value, str) and value else None
