"""What a question costs with the LLM answerer when the model is slow or hung (prints figures):
`python tests/bench_llm_time.py [timeout_seconds]` (default: the `llm.timeout` default, 60 s).

- streaming: a model writing about 30 tokens a second; when the first checked sentence is shown, when the reply
  ends, how long the check takes after it;
- hung: a server that accepts the connection and never answers;
- trickle: a server that streams a few characters every second and never finishes a sentence.
Each against the seed articles' passages, with the default settings otherwise (retries included).
"""

from __future__ import annotations

import socket
import statistics
import sys
import time

from fake_openai import FakeOpenAI, Reply
from seed_passages import passages

from bot.answering.extractive import ExtractiveAnswerer
from bot.answering.llm_answerer import LLMAnswerer, build_llm_answerer
from bot.models import Passage
from bot.settings import Settings
from ingest.embedding import Embedder

REPLY = (
    "The roof and spire of Notre Dame cathedral in Paris caught fire and collapsed [2]. "
    "In Magnitogorsk, a suspected gas leak caused an explosion that brought down an apartment building [1]. "
    "The two bell towers of Notre Dame were saved [2]."
)
QUESTION = "What collapsed in Paris and in Magnitogorsk?"


def answerer(embedder: Embedder, base_url: str, timeout: float | None) -> LLMAnswerer:
    llm: dict[str, object] = {"base_url": base_url} | ({"timeout": timeout} if timeout else {})
    settings = Settings(answerer="llm", llm=llm)
    return build_llm_answerer(settings, embedder=embedder, fallback=ExtractiveAnswerer(embedder, settings.answer))


def main() -> None:
    timeout = float(sys.argv[1]) if len(sys.argv) > 1 else None
    embedder = Embedder(Settings().embedding)
    embedder.embed(["warm up"])
    ranked = passages("magnitogorsk", slice(0, 2)) + passages("notre", slice(0, 3))
    with FakeOpenAI() as server:
        streaming = answerer(embedder, server.base_url, timeout)
        rows = []
        for _ in range(5):
            server.add(Reply(content=REPLY, chunk_chars=4, interval=4 / 120))
            timings = streaming.answer(QUESTION, QUESTION, ranked, on_text=lambda _: None).timings_ms
            rows.append((timings["first_text"], timings["generate"], timings["check"]))
        first, ended, check = (statistics.median(r[i] for r in rows) for i in range(3))
        print(
            f"streaming ({len(REPLY)} chars at 120 chars/s, median of 5): first checked sentence shown at "
            f"{first:.0f} ms, reply ended at {ended:.0f} ms, check after it {check:.0f} ms"
        )
        server.add(Reply(content="Well, " + "um, " * 5000, chunk_chars=4, interval=1.0))
        timed(answerer(embedder, server.base_url, timeout), "trickle", ranked)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        timed(answerer(embedder, f"http://127.0.0.1:{listener.getsockname()[1]}/v1", timeout), "hung", ranked)


def timed(llm: LLMAnswerer, label: str, ranked: list[Passage]) -> None:
    started = time.monotonic()
    answer = llm.answer(QUESTION, QUESTION, ranked)
    print(
        f"{label}: answered in {time.monotonic() - started:.1f} s (llm.timeout {llm.settings.llm.timeout:g} s, "
        f"retries {llm.settings.llm.retries}): {answer.notice}"
    )


if __name__ == "__main__":
    main()
