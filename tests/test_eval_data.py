"""The shipped eval sets are well formed and true to their articles; the dataset loaders report bad input."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from evals.datasets import (
    ANSWER_KINDS,
    DatasetError,
    EvalQuestion,
    check_beir_dir,
    iter_beir_corpus,
    load_beir_qrels,
    load_beir_queries,
    load_questions,
)
from evals.metrics import normalise_answer
from ingest.models import article_id_for

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "evals" / "data"
SEED_ARTICLES = ROOT / "seeds" / "wikinews-2019-sample.jsonl"
DEV_ARTICLES = DATA / "dev-wikinews-articles.jsonl"


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _texts_by_ref(article_files: list[Path], text_files: list[Path]) -> dict[str, str]:
    texts = {r["url"]: r["text"] for f in article_files for r in _jsonl(f)}
    for path in text_files:
        texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return texts


EvalSet = tuple[str, list[EvalQuestion], dict[str, str], int]

SETS = {
    "seeds.jsonl": (60, [SEED_ARTICLES], [ROOT / "seeds" / "the-hill-dorsey-omar.txt"]),
    "dev-wikinews.jsonl": (240, [DEV_ARTICLES], []),
}


@pytest.fixture(params=sorted(SETS), scope="module")
def eval_set(request: pytest.FixtureRequest) -> EvalSet:
    minimum, article_files, text_files = SETS[request.param]
    questions = load_questions(DATA / request.param)
    return request.param, questions, _texts_by_ref(article_files, text_files), minimum


def test_set_size_ids_and_unanswerable_share(eval_set: EvalSet) -> None:
    name, questions, _, minimum = eval_set
    assert len(questions) >= minimum, name
    assert len({q.id for q in questions}) == len(questions)
    unanswerable = sum(not q.answerable for q in questions) / len(questions)
    assert 0.20 <= unanswerable <= 0.35, f"{name}: {unanswerable:.0%} unanswerable"


def test_answerable_have_answers_and_evidence_unanswerable_none(eval_set: EvalSet) -> None:
    _, questions, _, _ = eval_set
    for q in questions:
        if q.answerable:
            assert q.answers and q.evidence, q.id
        else:
            assert not q.answers and not q.evidence, q.id


def test_every_quote_is_in_its_article_and_short(eval_set: EvalSet) -> None:
    _, questions, texts, _ = eval_set
    for q in questions:
        for ev in q.evidence:
            assert ev.ref in texts, f"{q.id}: evidence names an article not in the set's articles: {ev.ref}"
            assert _norm(ev.quote) in _norm(texts[ev.ref]), f"{q.id}: quote not in article: {ev.quote!r}"
            assert len(ev.quote) <= 250, f"{q.id}: quote longer than a sentence"


def test_some_gold_answer_is_in_the_evidence(eval_set: EvalSet) -> None:
    _, questions, _, _ = eval_set
    for q in (q for q in questions if q.answerable):
        quotes = " ".join(normalise_answer(ev.quote) for ev in q.evidence)
        assert any(normalise_answer(a) in quotes for a in q.answers), q.id


def test_dev_articles_are_not_seed_articles_and_keep_their_source() -> None:
    seeds, dev = _jsonl(SEED_ARTICLES), _jsonl(DEV_ARTICLES)
    assert len(dev) >= 60
    assert not {r["id"] for r in seeds} & {r["id"] for r in dev}
    assert not {r["url"] for r in seeds} & {r["url"] for r in dev}
    assert len({r["id"] for r in dev}) == len({r["url"] for r in dev}) == len(dev)
    assert {r["source"] for r in dev} == {"Wikinews"}
    used = {ev.url for q in load_questions(DATA / "dev-wikinews.jsonl") for ev in q.evidence}
    assert used == {r["url"] for r in dev}, "every dev article is asked about, and only those"


# The dev set is for tuning the reader per kind of fact and its refusals, so it needs enough of each.
MAIN_KINDS = ("person", "organisation", "place", "date", "number", "reason", "other")


def test_dev_set_mix_of_kinds_phrasings_and_refusals() -> None:
    questions = load_questions(DATA / "dev-wikinews.jsonl")
    assert all(q.kind in ANSWER_KINDS for q in questions), "every dev question says its kind"
    kinds = {kind: sum(q.kind == kind for q in questions) for kind in ANSWER_KINDS}
    for kind in ANSWER_KINDS:
        assert kinds[kind] >= (15 if kind in MAIN_KINDS else 6), kinds
    assert sum(not q.answerable for q in questions) / len(questions) >= 0.30
    assert sum("conversational" in q.meta.get("tags", []) for q in questions) >= 25
    multi_article = {q.id for q in questions if "multi-article" in q.meta.get("tags", [])}
    assert len(multi_article) >= 10
    for q in questions:
        spans_articles = len({ev.ref for ev in q.evidence}) >= 2
        assert spans_articles == (q.id in multi_article), f"{q.id}: multi-article tag and evidence disagree"


def test_attribution_links_every_wikinews_article() -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "Wikinews contributors" in readme and "https://creativecommons.org/licenses/by/2.5/" in readme
    for record in _jsonl(DEV_ARTICLES) + _jsonl(SEED_ARTICLES):
        assert record["url"] in readme


# -- loader errors ---------------------------------------------------------------------------------------


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


GOOD = {
    "id": "q1",
    "question": "Who?",
    "answerable": True,
    "answers": ["Ann"],
    "evidence": [{"url": "https://example.org/a", "quote": "Ann did it."}],
}


def test_load_questions_reads_a_valid_set(tmp_path: Path) -> None:
    refused = {"id": "q2", "question": "Why?", "answerable": False, "answers": [], "evidence": []}
    questions = load_questions(_write(tmp_path / "ok.jsonl", [GOOD, "", refused]))
    assert [q.id for q in questions] == ["q1", "q2"]
    assert questions[0].evidence[0].ref == "https://example.org/a"
    assert questions[1].answerable is False


def test_load_questions_carries_extra_fields_as_metadata(tmp_path: Path) -> None:
    extra = {"kind": "person", "tags": ["conversational"], "notes": "from the lead", "source_row": 7}
    plain, tagged = load_questions(_write(tmp_path / "meta.jsonl", [GOOD, {**GOOD, "id": "q2", **extra}]))
    assert plain.meta == {} and plain.kind is None
    assert tagged.meta == extra and tagged.kind == "person"
    assert (tagged.id, tagged.answers) == ("q2", ("Ann",))


def test_load_questions_accepts_a_url_with_its_own_article_id(tmp_path: Path) -> None:
    url = "https://example.org/a"
    both = {"url": url, "article_id": article_id_for(url, ""), "quote": "Ann did it."}
    (question,) = load_questions(_write(tmp_path / "both.jsonl", [{**GOOD, "evidence": [both]}]))
    assert question.evidence[0].ref == url
    assert question.evidence[0].article_id == article_id_for(url, "")


def test_load_questions_names_every_bad_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.jsonl",
        [
            GOOD,
            "{not json",
            {**GOOD, "id": "q1"},
            {**GOOD, "id": "q3", "answerable": "yes"},
            {**GOOD, "id": "q4", "answerable": False},
            {**GOOD, "id": "q5", "evidence": [{"quote": "x"}]},
            {**GOOD, "id": "q6", "kind": "colour"},
            {**GOOD, "id": "q7", "answers": []},
            {**GOOD, "id": "q8", "tags": "conversational"},
            {**GOOD, "id": "q9", "notes": ["a list"]},
            {**GOOD, "id": "q10", "evidence": [{"url": "https://example.org/a", "article_id": "u-0", "quote": "x"}]},
            {**GOOD, "id": "q11", "evidence": [{"url": "https://example.org/a", "path": "a.txt", "quote": "x"}]},
            {**GOOD, "id": "q12", "evidence": [{"url": "https://example.org/a", "quote": "x", "page": 2}]},
        ],
    )
    with pytest.raises(DatasetError) as caught:
        load_questions(path)
    problems = caught.value.problems
    url_id = article_id_for("https://example.org/a", "")
    assert [p.split(": ", 1)[0] for p in problems] == [f"{path}:{n}" for n in range(2, 14)]
    text = "\n".join(problems)
    for reason in (
        "malformed JSON",
        "duplicate id 'q1' (first on line 1)",
        "'answerable' must be true or false",
        "unanswerable question has no answers",
        "evidence[0]: needs exactly one of url, article_id, path, or a url and its article_id (has none)",
        "'kind' must be one of person, organisation, place, date, number, money, quantity, age, duration, reason, "
        "other (got 'colour')",
        "answerable question needs at least one answer",
        "'tags' must be a list of non-empty strings",
        "'notes' must be a string",
        f"evidence[0]: 'article_id' 'u-0' is not the url's article id ({url_id!r})",
        "evidence[0]: needs exactly one of url, article_id, path, or a url and its article_id (has url, path)",
        "evidence[0]: unknown field(s): page",
    ):
        assert reason in text


def test_load_questions_rejects_an_empty_or_missing_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match="no questions"):
        load_questions(tmp_path / "empty.jsonl")
    with pytest.raises(DatasetError, match="cannot read"):
        load_questions(tmp_path / "absent.jsonl")


def _beir(tmp_path: Path, qrels: str) -> Path:
    (tmp_path / "qrels").mkdir()
    _write(tmp_path / "corpus.jsonl", [{"_id": "d1", "title": "T", "text": "one"}, {"_id": 2, "text": "two"}])
    _write(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "first"}, {"_id": "q9", "text": "train only"}])
    (tmp_path / "qrels" / "test.tsv").write_text(qrels)
    return tmp_path


def test_beir_loaders(tmp_path: Path) -> None:
    directory = _beir(tmp_path, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t2\t2\n")
    check_beir_dir(directory)
    assert [(d.id, d.title, d.text) for d in iter_beir_corpus(directory)] == [
        ("d1", "T", "one"),
        ("2", "", "two"),
    ]
    qrels = load_beir_qrels(directory)
    assert qrels == {"q1": {"d1": 1, "2": 2}}
    assert load_beir_queries(directory, set(qrels)) == {"q1": "first"}


def test_beir_errors_name_the_file_and_line(tmp_path: Path) -> None:
    directory = _beir(tmp_path, "query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(DatasetError, match=r"test\.tsv:2: expected"):
        load_beir_qrels(directory)
    (directory / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n[1]\n')
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:2: expected an object"):
        list(iter_beir_corpus(directory))
    with pytest.raises(DatasetError, match=r"qrels/dev\.tsv: missing"):
        check_beir_dir(directory, "dev")
