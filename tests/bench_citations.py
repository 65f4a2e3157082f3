"""How long checking an LLM answer's citations takes, relevance to the question included:
`python tests/bench_citations.py` (prints figures)."""

from __future__ import annotations

import statistics
import time

from seed_passages import passages

from bot.answering.citations import check_citations
from bot.answering.context import fit_sources
from bot.answering.llm import estimate_tokens
from bot.answering.support import SupportChecker
from bot.settings import Settings
from ingest.embedding import Embedder

QUESTION = "What collapsed in Paris and Magnitogorsk, and what did Kipchoge do?"
ANSWER = (
    "The roof and spire of Notre Dame cathedral in Paris caught fire and collapsed [2]. "
    "In Magnitogorsk, a suspected gas leak caused an explosion that brought down a ten-storey apartment "
    "building [1]. Eliud Kipchoge ran a marathon in under two hours in Vienna [3]."
)


def main(repeats: int = 7) -> None:
    settings = Settings()
    embedder = Embedder(settings.embedding)
    embedder.embed(["warm up"])
    ranked = passages("magnitogorsk", slice(0, 2)) + passages("notre", slice(0, 2)) + passages("eliud", slice(0, 1))
    sources, context = fit_sources(ranked, settings.llm.context_tokens, estimate_tokens)
    llm = settings.llm
    checker = SupportChecker(embedder, llm.min_support, llm.max_new_words, llm.min_relevance)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        checked = check_citations(ANSWER, sources, checker, question=QUESTION)
        times.append((time.perf_counter() - started) * 1000)
    print(
        f"{len(ranked)} passages ({estimate_tokens(context)} tokens, estimated), {len(checked.sentences)} cited "
        f"sentences, {checked.supported} supported: check median {statistics.median(times):.0f} ms, "
        f"min {min(times):.0f} ms over {repeats} runs"
    )


if __name__ == "__main__":
    main()
