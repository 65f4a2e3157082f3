"""What keeping readers current and forgetting for good cost, on an embedded store of N chunks (real Chroma, real
SQLite, random unit vectors: the model plays no part here). Not a test: prints figures.

    .venv/bin/python tests/bench_store.py [--chunks 20000] [--rounds 5] [--sync-threshold 1]

- check: the per-question cost of asking the catalog whether the vectors changed (the write generation);
- reload: a reader's search right after another process wrote (it loads the index again, a fresh Chroma
  instance, under the vectors lock);
- write: one batch of 256 new chunks (the whole write protocol); with --sync-threshold 1000 (Chroma's default,
  for comparison) the index is saved every 1000 records and each loader replays the rest from Chroma's log;
- forget: removing one article and purging its text (catalog secure delete, FTS merge, WAL truncate, Chroma
  VACUUM), against removing it alone;
- restore: the first search after the index's metadata file was emptied (as a process killed while Chroma saved
  it leaves it): the collection made anew from the vectors the catalog keeps.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ingest.chunking import ChunkPlan
from ingest.config import StoreSettings
from ingest.models import Article, Chunk
from ingest.storage import vectors
from ingest.storage.sqlite import SQLiteCatalog
from ingest.storage.store import Store

DIMENSION = 384
WORDS = ["harbour", "bridge", "council", "ferry", "inspectors", "cracks", "repairs", "kroner", "season", "orchestra"]


def articles(n_chunks: int, start: int, rng: np.random.Generator) -> list[tuple[Article, list[Chunk]]]:
    """Synthetic articles of four chunks each."""
    written = []
    for i in range(start, start + n_chunks // 4):
        sentences = [" ".join(rng.choice(WORDS, 30)) + f" number {i}-{j}." for j in range(4)]
        text = " ".join(sentences)
        article = Article(id=f"c-bench{i:08d}", title=f"Story {i}", text=text, url=f"https://bench.example/{i}")
        chunks, offset = [], 0
        for j, sentence in enumerate(sentences):
            chunks.append(Chunk(article.id, j, offset, offset + len(sentence), sentence, article.title, 40))
            chunks[-1].content_hash = article.content_hash
            offset += len(sentence) + 1
        written.append((article, chunks))
    return written


def unit(n: int, rng: np.random.Generator) -> np.ndarray:
    drawn = rng.normal(size=(n, DIMENSION)).astype(np.float32)
    normed: np.ndarray = drawn / np.linalg.norm(drawn, axis=1, keepdims=True)
    return normed


def store_at(home: Path) -> Store:
    plan = ChunkPlan(max_tokens=256, overlap_sentences=1)
    return Store(SQLiteCatalog(home / "catalog.sqlite"), StoreSettings(), home=home, embedding_model="bench", plan=plan)


def timed(run: Callable[[], object], rounds: int) -> float:
    """Median seconds of `rounds` runs."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def fill(store: Store, n_chunks: int, rng: np.random.Generator) -> None:
    for start in range(0, n_chunks // 4, 1000):
        batch = articles(min(4000, n_chunks - 4 * start), start, rng)
        store.write(batch, unit(sum(len(c) for _, c in batch), rng))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sync-threshold", type=int, default=vectors.SYNC_THRESHOLD)
    args = parser.parse_args()
    vectors.SYNC_THRESHOLD = args.sync_threshold  # a benchmark's comparison, not a setting
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="byline-bench-store-") as scratch:
        home = Path(scratch) / "home"
        writer, reader = store_at(home), store_at(home)
        started = time.perf_counter()
        fill(writer, args.chunks, rng)
        built = time.perf_counter() - started
        print(f"sync_threshold {vectors.SYNC_THRESHOLD}: built {args.chunks} chunks in {built:.1f} s")
        probe = unit(1, rng)[0]
        reader.dense_search(probe, 10)
        print(f"check per question: {timed(reader.catalog.generation, 1000) * 1e6:.0f} µs")
        print(f"search, nothing changed: {timed(lambda: reader.dense_search(probe, 50), args.rounds) * 1e3:.1f} ms")
        next_id = [args.chunks // 4 + 1]

        def write_batch(target: Store) -> None:
            batch = articles(256, next_id[0], rng)
            next_id[0] += len(batch)
            target.write(batch, unit(256, rng))

        def reload() -> None:
            write_batch(writer)
            started = time.perf_counter()
            reader.dense_search(probe, 50)
            reloads.append(time.perf_counter() - started)

        reloads: list[float] = []
        timed(reload, args.rounds)
        print(f"search after another process wrote (reload): {statistics.median(reloads) * 1e3:.0f} ms")
        write = timed(lambda: write_batch(writer), args.rounds)
        print(f"write 256 chunks (the whole write protocol): {write * 1e3:.0f} ms")
        forget_one(writer, args.rounds)
        (pickle,) = (home / "chroma").glob("*/index_metadata.pickle")
        pickle.write_bytes(b"")
        writer.catalog.bump_generation()  # as the killed writer did before it began
        started = time.perf_counter()
        reader.dense_search(probe, 50)
        print(f"search that restored the damaged index from the catalog: {time.perf_counter() - started:.1f} s")


def forget_one(store: Store, rounds: int) -> None:
    ids = store.catalog.indexed_article_ids(store.collection_name)
    picks = iter(ids)
    with_purge = timed(lambda: store.forget([next(picks)]), rounds)
    real_purge = store.purge
    store.purge = lambda: None  # type: ignore[method-assign]
    without = timed(lambda: store.forget([next(picks)]), rounds)
    store.purge = real_purge  # type: ignore[method-assign]
    size = sum(p.stat().st_size for p in (store.home / "chroma").glob("chroma.sqlite3"))
    print(
        f"forget one article: {with_purge * 1e3:.0f} ms with the purge, {without * 1e3:.0f} ms without "
        f"(chroma.sqlite3 {size / 1e6:.0f} MB)"
    )


if __name__ == "__main__":
    main()
