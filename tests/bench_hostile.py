"""Time and memory of the text stages on hostile text: `python tests/bench_hostile.py [SIZE ...]`.

For each kind of pathological text (no spaces, no punctuation, runs of dots, names that look like the start of
a hover card...) at each size (default 1 MB and 4 MB), prints the seconds spent cleaning, splitting sentences
and chunking (the real tokenizer), the chunks made and the longest one, and the process's peak RSS so far. Time
that grows with the size ratio, not its square, is what the stages promise.
"""

from __future__ import annotations

import random
import resource
import string
import sys
import time
from collections.abc import Iterator

from ingest.chunking import ChunkPlan, chunk_articles
from ingest.clean import clean_text
from ingest.config import EmbeddingSettings
from ingest.embedding import Embedder
from ingest.loaders import make_article
from ingest.text import split_sentences


def texts(size: int) -> Iterator[tuple[str, str]]:
    rng = random.Random(7)
    yield "no spaces", "".join(rng.choices(string.ascii_lowercase, k=size))
    words = " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(size // 6))
    yield "no punctuation", words[:size]
    yield "dots", "." * size
    yield "dots, no sentence end", ("!" * 1000 + " a ") * (size // 1003)
    yield "card bait", "AaAa Aa " * (size // 8)
    yield "card bait, MOREs", ("AaAa Aa " * 137 + " MORE ") * (size // 1102)
    yield "digits", "1234567890" * (size // 10)
    yield "CJK", "新聞記事の本文" * (size // 21)
    yield "short lines", "a\n" * (size // 2)
    yield "short sentences", "The council met. " * (size // 17)


def main(sizes: list[int]) -> None:
    embedder = Embedder(EmbeddingSettings())
    embedder.token_offsets(["warm up"])
    plan = ChunkPlan(max_tokens=embedder.max_tokens, overlap_sentences=1)
    print(f"{'size':>9}  {'text':<22} {'clean':>6} {'split':>6} {'chunk':>6}  {'chunks':>6} {'longest':>7}  peak RSS")
    for size in sizes:
        for name, text in texts(size):
            started = time.perf_counter()
            cleaned = clean_text(text)
            cleaning = time.perf_counter() - started
            started = time.perf_counter()
            split_sentences(cleaned)
            splitting = time.perf_counter() - started
            started = time.perf_counter()
            (chunks,) = chunk_articles([make_article(title="Hostile", text=text)], embedder, plan)
            chunking = time.perf_counter() - started
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            longest = max(c.end - c.start for c in chunks)
            print(
                f"{size:>9,}  {name:<22} {cleaning:6.2f} {splitting:6.2f} {chunking:6.2f}  {len(chunks):>6} "
                f"{longest:>7}  {peak:.0f} MiB",
                flush=True,
            )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [1_000_000, 4_000_000])
