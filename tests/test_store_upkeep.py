"""The catalog is the source of truth: crash leftovers are marked and swept, a missing or damaged vector index is
one line naming the repair, `byline reindex` rebuilds the vectors (and resumes when cut short), `byline doctor`
finds and fixes what is out of step; forget takes any spelling of a path and leaves no text in the home. Each runs
on both catalogs, SQLite and PostgreSQL (the vectors are the home's embedded Chroma in both)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from catalog_backends import on_both_catalogs
from conftest import SEED_JSONL
from typer.testing import CliRunner

from bot.app import Byline
from bot.cli.main import build_app
from bot.settings import load_settings
from bot.slack.feedback import WITHDRAWN, FeedbackStore, PostedAnswer
from ingest.embedding import Embedder
from ingest.models import Chunk
from ingest.storage.store import IndexDamagedError, StoreError

app = build_app()
SEED_URL = json.loads(SEED_JSONL.read_text().splitlines()[0])["url"]
UNIQUE = "The amethyst tortoise recited Portuguese sonnets to the harbour seals at dawn."


@pytest.fixture
def seeded(seeded_on_both: Byline) -> Byline:
    return seeded_on_both


def vector_ids(byline: Byline) -> set[str]:
    return byline.store.vector_ids()


def chunk_ids(byline: Byline) -> set[str]:
    return byline.catalog.chunk_ids(byline.store.collection_name)


def write_story(folder: Path, name: str = "story.md") -> Path:
    path = folder / name
    path.write_text(f"Tortoise poetry\n\nA zoo keeper reported an unusual morning. {UNIQUE} Visitors applauded.\n")
    return path


def files_holding(home: Path, text: str) -> list[str]:
    needle = text.encode()
    return [str(p) for p in home.rglob("*") if p.is_file() and needle in p.read_bytes()]


@on_both_catalogs
def test_a_crash_after_the_switch_leaves_marked_leftovers_the_next_open_sweeps(
    byline: Byline, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rates.md"
    head = "---\nurl: https://news.example/rates\n---\nBank holds rates\n\n"
    path.write_text(head + "The central bank held its main rate at 4.5 percent on Thursday.")
    byline.ingest([str(path)])
    path.write_text(head + "The central bank cut its main rate to 4.25 percent on Thursday.")
    switch = byline.catalog.commit_articles

    def switch_then_die(*args: object, **kwargs: object) -> list[str]:
        switch(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt  # killed before the replaced vectors were deleted

    monkeypatch.setattr(byline.catalog, "commit_articles", switch_then_die)
    with pytest.raises(KeyboardInterrupt):
        byline.ingest([str(path)])
    assert vector_ids(byline) > chunk_ids(byline)  # the old version's vectors are still there...
    assert byline.catalog.pending(byline.store.collection_name)  # ...and marked
    monkeypatch.undo()

    reopened = Byline(byline.settings, embedder=embedder)
    reopened.store.open()
    assert vector_ids(reopened) == chunk_ids(reopened) and reopened.doctor().ok
    assert "4.25 percent" in reopened.ask("What rate did the central bank set?").text


@on_both_catalogs
def test_a_forget_cut_short_is_finished_by_the_next_open(
    byline: Byline, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    byline.ingest([str(SEED_JSONL)])
    target = byline.catalog.indexed_article_ids(byline.store.collection_name)[0]

    def die(article_ids: list[str]) -> None:
        raise KeyboardInterrupt  # killed after the pending mark, before anything was removed

    monkeypatch.setattr(byline.catalog, "delete_articles", die)
    with pytest.raises(KeyboardInterrupt):
        byline.forget([target])
    monkeypatch.undo()
    reopened = Byline(byline.settings, embedder=embedder)
    reopened.store.open()
    assert reopened.catalog.article(target) is None
    assert not {c for c in vector_ids(reopened) if c.startswith(target)}
    assert reopened.doctor().ok


def damage(home: Path, how: str) -> None:
    if how == "folder deleted":
        shutil.rmtree(home / "chroma")
    else:  # as a process killed while Chroma saved its index leaves it
        (pickle,) = (home / "chroma").glob("*/index_metadata.pickle")
        pickle.write_bytes(b"")


@pytest.mark.parametrize("how", ["folder deleted", "index metadata emptied"])
def test_a_damaged_index_is_restored_from_the_catalogs_copy(
    seeded: Byline, cli_runner: CliRunner, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    chunks = len(chunk_ids(seeded))
    damage(seeded.settings.home, how)
    asked = cli_runner.invoke(app, ["ask", "What happened in Magnitogorsk?"])
    assert asked.exit_code == 0, asked.output
    assert f"restored its {chunks} vectors from the catalog" in caplog.text  # a warning on stderr
    assert cli_runner.invoke(app, ["doctor"]).exit_code == 0


@pytest.mark.parametrize("how", ["folder deleted", "index metadata emptied"])
def test_without_a_copy_a_damaged_index_is_one_line_naming_the_repair(
    seeded: Byline, cli_runner: CliRunner, how: str
) -> None:
    with seeded.catalog.transaction() as db:  # a home written before the catalog kept vectors
        db.execute("UPDATE chunks SET vector = NULL, embed_hash = NULL")
    damage(seeded.settings.home, how)
    for command in (["ask", "What happened in Magnitogorsk?"], ["ingest", str(SEED_JSONL)], ["forget", SEED_URL]):
        result = cli_runner.invoke(app, command)
        assert result.exit_code == 1, result.output
        assert result.stderr.count("\n") == 1 and "run `byline reindex`" in result.stderr, result.stderr
    assert "articles: 38" in cli_runner.invoke(app, ["stats"]).stdout  # the catalog still knows every article
    doctor = cli_runner.invoke(app, ["doctor", "--json"])
    assert doctor.exit_code == 1 and not json.loads(doctor.stdout)["ok"]

    reindexed = cli_runner.invoke(app, ["reindex", "--json"])
    assert reindexed.exit_code == 0, reindexed.output
    assert json.loads(reindexed.stdout)["chunks"] == len(chunk_ids(seeded))
    assert cli_runner.invoke(app, ["doctor"]).exit_code == 0
    assert cli_runner.invoke(app, ["ask", "What happened in Magnitogorsk?"]).exit_code == 0


def test_an_interrupted_reindex_says_so_and_resumes(
    seeded: Byline, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real_embed = embedder.embed

    def embed_then_die(texts: list[str]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_embed(texts)

    monkeypatch.setattr(embedder, "embed", embed_then_die)
    with pytest.raises(KeyboardInterrupt):
        seeded.reindex()
    monkeypatch.undo()

    asker = Byline(seeded.settings, embedder=embedder)
    with pytest.raises(IndexDamagedError, match=r"reindex .* was interrupted: run `byline reindex` to finish it"):
        asker.ask("What happened in Magnitogorsk?")
    report = Byline(seeded.settings, embedder=embedder).reindex()
    assert report.resumed and 0 < report.embedded < report.chunks == len(chunk_ids(seeded))
    assert Byline(seeded.settings, embedder=embedder).doctor().ok


def test_doctor_finds_and_fixes_what_is_out_of_step(seeded: Byline, embedder: Embedder) -> None:
    store = seeded.store
    lost = sorted(chunk_ids(seeded))[:3]
    before = store.vectors(lost)
    store.delete_vectors(lost)
    orphan = Chunk("c-orphan", 0, 0, 5, "stray", "", 2, content_hash="0" * 64)
    store.put_vectors([orphan], np.ones((1, embedder.dimension), dtype=np.float32), [{"article_id": "c-orphan"}])
    with seeded.catalog.transaction() as db:  # one chunk's lexical entries lost
        if seeded.settings.store.database_url:
            db.execute("DELETE FROM lexical_postings WHERE chunk = (SELECT min(rowid) FROM chunks)")
        else:
            db.execute("DELETE FROM chunks_fts WHERE rowid = (SELECT min(rowid) FROM chunks)")

    found = {c.name: c for c in seeded.doctor().checks}
    assert found["vectors match chunks"].figures == {
        "chunks": len(chunk_ids(seeded)),
        "vectors": len(chunk_ids(seeded)) - 3 + 1,
        "missing": 3,
        "orphans": 1,
        "differ": 0,
    }
    assert found["lexical index"].figures["out_of_step"] == 1 and not found["lexical index"].ok

    fixed = seeded.doctor(fix=True)
    assert fixed.ok, fixed.to_dict()
    assert any("removed 1 orphan" in r for r in fixed.repairs) and any("again 3 missing" in r for r in fixed.repairs)
    for chunk_id, vector in store.vectors(lost).items():
        assert float(np.dot(vector, before[chunk_id])) > 0.999  # embedded again exactly as ingest did


@on_both_catalogs
def test_forget_takes_any_spelling_of_the_path_and_leaves_no_text_in_the_home(
    byline: Byline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    write_story(tmp_path)
    write_story(tmp_path, "other.md").write_text("Ferry news\n\nThe night ferry sails again from Monday.\n")
    byline.ingest(["story.md", str(SEED_JSONL)])  # ingested by a relative path
    home = byline.settings.home
    assert files_holding(home, UNIQUE)

    for spelling in (str(tmp_path / "story.md"), "~/story.md", "./story.md"):
        assert byline.catalog.resolve(spelling), spelling
    removed, missing = byline.forget([str(tmp_path / "story.md")])
    assert len(removed) == 1 and not missing
    assert files_holding(home, UNIQUE) == [] and files_holding(home, "Tortoise poetry") == []
    assert byline.doctor().ok
    assert "Magnitogorsk" in byline.ask("What happened in Magnitogorsk?").text


@on_both_catalogs
def test_forget_withdraws_the_recorded_slack_answers_that_cited_the_article(
    cli_runner: CliRunner, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_story(tmp_path)
    byline = Byline(load_settings(), embedder=embedder)
    byline.ingest(["story.md", str(SEED_JSONL)])
    recorded = FeedbackStore(byline.catalog)
    about_the_story = byline.ask("What did the tortoise recite to the seals?")
    about_the_seed = byline.ask("What happened in Magnitogorsk?")
    assert "Portuguese sonnets" in about_the_story.text and "Magnitogorsk" in about_the_seed.text
    recorded.record_answer(about_the_story, PostedAnswer("story", "C1", "1.0", None, "U1"))
    recorded.record_answer(about_the_seed, PostedAnswer("seed", "C1", "2.0", None, "U1"))
    recorded.record_vote("story", "U2", -1, channel="C1", message_ts="1.0")

    result = cli_runner.invoke(app, ["forget", "story.md"])
    assert result.exit_code == 0, result.output
    assert "removed 1 article(s)" in result.stdout
    assert "withdrew 1 answer(s) the Slack bot had recorded citing them" in result.stdout
    answers = {row[0]: row[1:] for row in byline.catalog.fetch("SELECT id, answer, citations FROM slack_answers")}
    assert answers["story"] == (WITHDRAWN, "[]")
    assert answers["seed"][0] == about_the_seed.text and "Magnitogorsk" in answers["seed"][1]
    assert recorded.votes("story") == {"U2": -1}  # the vote and the question stay, for the feedback export
    assert files_holding(byline.settings.home, "Portuguese sonnets") == []


def test_forget_of_an_empty_ref_is_a_usage_error(cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(app, ["forget", ""])
    assert result.exit_code == 2 and "empty" in result.stderr


def test_doctor_on_a_sound_index_prints_each_check(seeded: Byline, cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok    catalog",
        "ok    vectors readable",
        "ok    vectors match chunks",
        "ok    catalog keeps vectors",
        "ok    lexical index",
        "ok    pending writes",
        "ok    reindex",
    ]
    chunks = len(chunk_ids(seeded))
    assert f"{chunks} chunks, {chunks} vectors, 0 missing, 0 orphans, 0 differ" in result.stdout
    assert os.environ["BYLINE_HOME"] == str(seeded.settings.home)


def test_only_an_internal_chroma_error_that_survives_a_reload_rebuilds_the_index(
    seeded: Byline, caplog: pytest.LogCaptureFixture
) -> None:
    from chromadb.errors import InternalError

    index = seeded.store.index
    seeded.store.open()

    def bad_request(collection: object) -> None:
        raise ValueError("not a damaged index: a request the store got wrong")

    with pytest.raises(StoreError, match="cannot test: not a damaged index"):
        index.read("test", bad_request)
    failures = iter([InternalError("Error finding id"), InternalError("Error finding id")])

    def damaged_twice(collection: object) -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return 1

    assert "restored" not in caplog.text
    assert index.read("test", damaged_twice) == 1  # failed, failed on a fresh load, worked on the rebuilt index
    assert f"restored its {len(chunk_ids(seeded))} vectors from the catalog" in caplog.text
    assert seeded.doctor().ok
