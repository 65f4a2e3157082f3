"""Several machines, one index: two homes (two BYLINE_HOMEs standing in for two machines) sharing one real
PostgreSQL catalog and one real `chroma run` server; and Chroma behind a token check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from chroma_server import TokenProxy, running_chroma
from conftest import SEED_ARTICLE, SEED_JSONL
from fake_slack import FakeSlack
from slack_harness import CHANNEL, event_body, mention
from slack_sdk.signature import SignatureVerifier
from test_slack_cli import wait_until_serving
from test_slack_serve import SECRET, Served

from bot.app import Byline
from bot.settings import Settings, load_settings
from ingest.embedding import Embedder
from ingest.storage.catalog import LexicalQuery
from ingest.storage.store import StoreError

pytestmark = [pytest.mark.slow, pytest.mark.network]

BYLINE = Path(sys.executable).with_name("byline")
QUESTIONS = [
    "Why did Jack Dorsey call Ilhan Omar?",
    "What happened in Magnitogorsk?",
    "Who won the election in Ukraine?",
]


@pytest.fixture
def shared(fresh_postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """One PostgreSQL catalog and one Chroma server, set in the environment every machine here starts from;
    yields the catalog's URL."""
    with running_chroma(tmp_path / "chroma-server") as chroma_url:
        monkeypatch.setenv("BYLINE_STORE_DATABASE_URL", fresh_postgres_url)
        monkeypatch.setenv("BYLINE_STORE_CHROMA_URL", chroma_url)
        yield fresh_postgres_url


def machine(home: Path, embedder: Embedder) -> Byline:
    return Byline(load_settings(home=home), embedder=embedder)


def environment(home: Path) -> dict[str, str]:
    """A `byline` process on the machine whose home this is."""
    return {**os.environ, "BYLINE_HOME": str(home)}


def vector_ids(byline: Byline) -> set[str]:
    return byline.store.vector_ids()


def catalog_chunk_ids(byline: Byline) -> set[str]:
    return {row[0] for row in byline.catalog.fetch("SELECT id FROM chunks")}


def retrieved(byline: Byline, question: str) -> list[tuple[str, float, float | None, float | None]]:
    return [(p.chunk_id, round(p.score, 6), p.lexical_score, p.dense_score) for p in byline.retriever.search(question)]


def without_timings(answer: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in answer.items() if key != "timings_ms"}


def test_ask_on_b_what_a_ingested_and_forget_on_b(shared: str, embedder: Embedder, tmp_path: Path) -> None:
    a, b = machine(tmp_path / "a", embedder), machine(tmp_path / "b", embedder)
    report = a.ingest([str(SEED_JSONL), str(SEED_ARTICLE)])
    assert report.added == 38 and not report.failed
    for question in QUESTIONS:
        assert retrieved(b, question) == retrieved(a, question), question
        on_a, on_b = a.ask(question).to_dict(), b.ask(question).to_dict()
        assert without_timings(on_b) == without_timings(on_a), question
    assert not (tmp_path / "b" / "catalog.sqlite").exists() and not (tmp_path / "b" / "chroma").exists()

    def bm25_articles(byline: Byline) -> set[str]:
        hits = byline.store.lexical_search(LexicalQuery(["dorsey", "twitter", "president"], 50))
        return {
            row.article_id for row in byline.catalog.chunk_rows(a.store.collection_name, [c for c, _ in hits]).values()
        }

    (dorsey,) = b.catalog.resolve(str(SEED_ARTICLE))  # the path A ingested, known to B through the catalog
    before = bm25_articles(a)
    assert dorsey in before and len(before) > 1
    removed, missing = b.forget([str(SEED_ARTICLE)])
    assert removed == [dorsey] and not missing
    # A, still open, answers without it: neither BM25 nor the vectors hold it any more
    assert bm25_articles(a) == before - {dorsey}
    assert all(not chunk_id.startswith(dorsey) for chunk_id in vector_ids(a))
    answer = a.ask("Why did Jack Dorsey call Ilhan Omar?")
    assert all(c.article_id != dorsey for c in answer.citations)
    assert all(p.article_id != dorsey for p in a.retriever.search("Jack Dorsey Ilhan Omar phone call"))


def test_one_slack_event_delivered_16_times_to_bots_on_two_machines_is_answered_once(
    shared: str, seeded_home: Path, tmp_path: Path
) -> None:
    """Two `byline slack --http` processes with homes of their own (scripted answers: this is about delivery),
    one PostgreSQL catalog; Slack delivers one message 16 times at once (its retries, and a second bot's
    connection), spread over both."""
    with FakeSlack() as fake:
        bots = [Served(fake, tmp_path / name, answer_seconds=0.5) for name in ("a", "b")]
        try:
            for bot in bots:
                wait_until_serving(bot.http, bot.url + "/healthz", bot.process)
            ts = fake.add_message(CHANNEL, "why did Dorsey call Omar?")
            body = json.dumps(event_body(mention("why did Dorsey call Omar?", ts))).encode()
            start = threading.Barrier(16)

            def deliver(n: int) -> int:
                stamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/json",
                    "X-Slack-Request-Timestamp": stamp,
                    "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body) or "",
                    **({"X-Slack-Retry-Num": str(n // 2), "X-Slack-Retry-Reason": "http_timeout"} if n > 1 else {}),
                }
                bot = bots[n % 2]
                start.wait()
                return bot.http.post(bot.url + "/slack/events", content=body, headers=headers).status_code

            with ThreadPoolExecutor(16) as pool:
                assert list(pool.map(deliver, range(16))) == [200] * 16
            fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
            time.sleep(2)  # the only sleep: long enough for a second answer (0.5 s each) to show, if there were one
            answers = [c for c in fake.calls_to("chat.postMessage") if "Dorsey called Omar" in str(c.args.get("text"))]
        finally:
            for bot in bots:
                bot.close()
    assert len(answers) == 1
    with psycopg.connect(shared) as conn:  # both bots shared the catalog: the delivery was recorded there
        keys = [row[0] for row in conn.execute("SELECT key FROM slack_deliveries")]
    assert f"ts:{CHANNEL}:{ts}" in keys


def word_of(n: int) -> str:
    """A word only article n has."""
    return "".join("bcdfghjklmnpqrstvwxz"[int(d)] for d in f"{n:03d}")


def story(n: int, version: int) -> dict[str, str]:
    """Article n of a set, at a version: each has a word of its own (for BM25) and says its version."""
    word = word_of(n)
    return {
        "url": f"https://news.example/story-{n}",
        "title": f"Council report {n}",
        "source": "Example News",
        "date": "2024-03-01",
        "text": f"The {word} district council met on Monday. Version {version} of the report says the budget for "
        f"the {word} district is {100 * n + version} thousand euros. "
        + " ".join(f"Paragraph {k} of report {n} covers roads, schools and parks." for k in range(12)),
    }


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_sigkill_mid_write_on_a_leaves_b_every_article_whole(shared: str, embedder: Embedder, tmp_path: Path) -> None:
    a_home = tmp_path / "a"
    a, b = machine(a_home, embedder), machine(tmp_path / "b", embedder)
    first = [story(n, 1) for n in range(24)]
    assert a.ingest([str(write_jsonl(tmp_path / "v1.jsonl", first))]).added == 24
    v1 = dict(a.store.indexed_hashes([a.catalog.resolve(r["url"])[0] for r in first]))
    second = write_jsonl(tmp_path / "v2.jsonl", [story(n, 2) for n in range(24)])

    ingest = subprocess.Popen([str(BYLINE), "ingest", str(second)], env=environment(a_home))
    try:
        with psycopg.connect(shared, autocommit=True) as watch:
            deadline = time.monotonic() + 240
            while not watch.execute("SELECT count(*) FROM pending_writes").fetchone()[0]:  # type: ignore[index]
                assert ingest.poll() is None and time.monotonic() < deadline, "the ingest never started writing"
                time.sleep(0.005)
        ingest.send_signal(signal.SIGKILL)  # mid-write: vectors being written, the catalog not yet switched
    finally:
        ingest.kill()
        ingest.wait()

    # B, a bot started before A died, sees every article whole, at its old or its new version
    ids = {n: a.catalog.resolve(record["url"])[0] for n, record in enumerate(first)}
    hashes = b.store.indexed_hashes(list(ids.values()))
    vectors = vector_ids(b)
    versions: dict[int, int] = {}
    for n, article_id in ids.items():
        article = b.catalog.article(article_id)
        assert article is not None
        versions[n] = 1 if hashes[article_id] == v1[article_id] else 2
        assert f"Version {versions[n]} of the report" in article.text
        current = {row[0] for row in b.catalog.fetch("SELECT id FROM chunks WHERE article_id = ?", (article_id,))}
        assert current and current <= vectors  # every chunk of the version the catalog holds has its vector
        (best, _), *_ = b.store.lexical_search(LexicalQuery([word_of(n)], 5))
        assert best in current
    budget = b.ask(f"What is the budget for the {word_of(5)} district?")
    assert f"{500 + versions[5]} thousand" in budget.text

    again = machine(a_home, embedder)  # A restarted: its next ingest completes the job
    report = again.ingest([str(second)])
    assert not report.failed and report.added == 0 and report.updated + report.unchanged == 24
    assert all(hash_ != v1[i] for i, hash_ in again.store.indexed_hashes(list(ids.values())).items())
    assert vector_ids(again) == catalog_chunk_ids(again)
    assert again.catalog.fetch("SELECT count(*) FROM pending_writes")[0][0] == 0


def test_two_ingesters_on_two_machines_store_each_article_once(shared: str, embedder: Embedder, tmp_path: Path) -> None:
    a_in = write_jsonl(tmp_path / "a.jsonl", [story(n, 1) for n in range(0, 14)])
    b_in = write_jsonl(tmp_path / "b.jsonl", [story(n, 1) for n in range(6, 20)])
    runs = [
        subprocess.Popen(
            [str(BYLINE), "ingest", "--json", str(path)],
            env=environment(tmp_path / home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for home, path in (("a", a_in), ("b", b_in))
    ]
    reports = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err.decode()
        reports.append(json.loads(out))
    assert all(not report["failed"] for report in reports)
    byline = machine(tmp_path / "a", embedder)
    urls = [row[0] for row in byline.catalog.fetch("SELECT url FROM articles")]
    assert sorted(urls) == sorted(story(n, 1)["url"] for n in range(20))
    assert vector_ids(byline) == catalog_chunk_ids(byline)  # each chunk's vector once, no leftovers
    assert byline.catalog.fetch("SELECT count(*) FROM pending_writes")[0][0] == 0


@pytest.mark.parametrize(
    ("setting", "header", "value"),
    [
        ("authorization", "Authorization", "Bearer s3cret-token"),
        ("x-chroma-token", "X-Chroma-Token", "s3cret-token"),
    ],
)
def test_chroma_token_in_the_header_the_setting_names(
    setting: str, header: str, value: str, embedder: Embedder, tmp_path: Path
) -> None:
    with running_chroma(tmp_path / "chroma-server") as upstream, TokenProxy(upstream, header, value) as proxy:
        store = {"chroma_url": proxy.url, "chroma_token": "s3cret-token", "chroma_auth_header": setting}
        byline = Byline(Settings(home=tmp_path / "home", store=store), embedder=embedder)
        assert byline.ingest([str(SEED_ARTICLE)]).added == 1
        assert not byline.ask("Why did Jack Dorsey call Ilhan Omar?").refused
        assert proxy.refused == 0

        env = {
            **os.environ,
            "BYLINE_HOME": str(tmp_path / "home"),
            "BYLINE_STORE_CHROMA_URL": proxy.url,
            "BYLINE_STORE_CHROMA_TOKEN": "wrong-token",
            "BYLINE_STORE_CHROMA_AUTH_HEADER": setting,
        }
        stats = subprocess.run([str(BYLINE), "stats"], env=env, capture_output=True, text=True, timeout=120)
        assert stats.returncode == 1 and proxy.refused > 0
        assert stats.stderr.startswith("error: ") and proxy.url in stats.stderr
        assert len(stats.stderr.strip().splitlines()) == 1 and "wrong-token" not in stats.stderr
        wrong = Byline(Settings(home=tmp_path / "home", store={**store, "chroma_token": "wrong"}), embedder=embedder)
        with pytest.raises(StoreError):
            wrong.store.health()
