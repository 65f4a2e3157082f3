"""Eval datasets: Byline's own JSONL question sets (validated, errors as file:line) and BEIR directories."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.models import article_id_for

# Which article an evidence quote comes from: one of these keys names it (or a url with its own article_id).
EVIDENCE_REFS = ("url", "article_id", "path")
_QUESTION_KEYS = {"id", "question", "answerable", "answers", "evidence"}
# The kind of fact a question asks for; for an unanswerable question, the kind it would have.
ANSWER_KINDS = (
    "person",
    "organisation",
    "place",
    "date",
    "number",
    "money",
    "quantity",
    "age",
    "duration",
    "reason",
    "other",
)


class DatasetError(ValueError):
    """A dataset that cannot be used; `problems` lists every one found, each as 'file:line: reason'."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n".join(problems[:20])
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s) in the dataset:\n{shown}{more}")


@dataclass(frozen=True, slots=True)
class Evidence:
    """A gold quote and the article it is in, named by one of url, article_id or path (or a url and its id)."""

    quote: str
    url: str | None = None
    article_id: str | None = None
    path: str | None = None

    @property
    def ref(self) -> str:
        return self.url or self.article_id or self.path or ""


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    id: str
    question: str
    answerable: bool
    answers: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    # Every other field of the line (kind, tags, notes, anything else), kept as written.
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def kind(self) -> str | None:
        """The kind of fact asked for (one of ANSWER_KINDS), when the set says."""
        kind = self.meta.get("kind")
        return kind if isinstance(kind, str) else None


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read and check an own-format JSONL set; raises DatasetError naming every bad line at once."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError([f"{path}: cannot read: {exc}"]) from exc
    questions: list[EvalQuestion] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: malformed JSON: {exc.msg} (column {exc.colno})")
            continue
        found = _question_problems(record)
        if not found and record["id"] in first_line:
            found = [f"duplicate id {record['id']!r} (first on line {first_line[record['id']]})"]
        if found:
            problems += [f"{where}: {reason}" for reason in found]
            continue
        first_line[record["id"]] = number
        questions.append(_question(record))
    if not questions and not problems:
        problems.append(f"{path}: no questions")
    if problems:
        raise DatasetError(problems)
    return questions


def _question_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["a line must be a JSON object"]
    problems = []
    missing = sorted(_QUESTION_KEYS - record.keys())
    if missing:
        problems.append(f"missing field(s): {', '.join(missing)}")
    problems += _meta_problems(record)
    for key in ("id", "question"):
        if key in record and not (isinstance(record[key], str) and record[key].strip()):
            problems.append(f"{key!r} must be a non-empty string")
    answerable = record.get("answerable")
    if "answerable" in record and not isinstance(answerable, bool):
        problems.append("'answerable' must be true or false")
    answers, evidence = record.get("answers", []), record.get("evidence", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
        problems.append("'answers' must be a list of non-empty strings")
    if not isinstance(evidence, list):
        problems.append("'evidence' must be a list")
    else:
        for index, item in enumerate(evidence):
            problems += [f"evidence[{index}]: {reason}" for reason in _evidence_problems(item)]
    if answerable is True and (not answers or not evidence):
        problems.append("an answerable question needs at least one answer and one evidence quote")
    if answerable is False and (answers or evidence):
        problems.append("an unanswerable question has no answers and no evidence")
    return problems


def _meta_problems(record: dict[str, Any]) -> list[str]:
    """Extra fields are kept as they are; the ones with a known meaning must be well formed."""
    problems = []
    if "kind" in record and record["kind"] not in ANSWER_KINDS:
        problems.append(f"'kind' must be one of {', '.join(ANSWER_KINDS)} (got {record['kind']!r})")
    tags = record.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        problems.append("'tags' must be a list of non-empty strings")
    if "notes" in record and not isinstance(record["notes"], str):
        problems.append("'notes' must be a string")
    return problems


def _evidence_problems(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return ["must be an object"]
    problems = []
    refs = [key for key in EVIDENCE_REFS if key in item]
    if len(refs) != 1 and refs != ["url", "article_id"]:
        named = ", ".join(refs) or "none"
        problems.append(f"needs exactly one of {', '.join(EVIDENCE_REFS)}, or a url and its article_id (has {named})")
    for key in refs:
        if not (isinstance(item[key], str) and item[key].strip()):
            problems.append(f"{key!r} must be a non-empty string")
    if refs == ["url", "article_id"] and not problems:
        url_id = article_id_for(item["url"], "")
        if item["article_id"] != url_id:
            problems.append(f"'article_id' {item['article_id']!r} is not the url's article id ({url_id!r})")
    if not (isinstance(item.get("quote"), str) and item["quote"].strip()):
        problems.append("'quote' must be a non-empty string")
    unknown = sorted(item.keys() - {"quote", *EVIDENCE_REFS})
    if unknown:
        problems.append(f"unknown field(s): {', '.join(unknown)}")
    return problems


def _question(record: dict[str, Any]) -> EvalQuestion:
    return EvalQuestion(
        id=record["id"],
        question=record["question"].strip(),
        answerable=record["answerable"],
        answers=tuple(record["answers"]),
        evidence=tuple(
            Evidence(
                quote=item["quote"],
                url=item.get("url"),
                article_id=item.get("article_id"),
                path=item.get("path"),
            )
            for item in record["evidence"]
        ),
        meta={key: value for key, value in record.items() if key not in _QUESTION_KEYS},
    )


# -- BEIR -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BeirDoc:
    id: str
    title: str
    text: str


def check_beir_dir(directory: Path, split: str = "test") -> None:
    """Raise DatasetError unless the directory has corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""
    needed = [directory / "corpus.jsonl", directory / "queries.jsonl", directory / "qrels" / f"{split}.tsv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise DatasetError(
            [f"{p}: missing (a BEIR directory holds corpus.jsonl, queries.jsonl, qrels/)" for p in missing]
        )


def _jsonl_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError([f"{where}: malformed JSON: {exc.msg}"]) from exc
            if not isinstance(record, dict) or not isinstance(record.get("_id"), str | int):
                raise DatasetError([f"{where}: expected an object with an '_id'"])
            yield where, record


def iter_beir_corpus(directory: Path) -> Iterator[BeirDoc]:
    """Documents one at a time, so a large corpus is never held in memory."""
    for where, record in _jsonl_records(directory / "corpus.jsonl"):
        title, text = record.get("title") or "", record.get("text") or ""
        if not isinstance(title, str) or not isinstance(text, str):
            raise DatasetError([f"{where}: 'title' and 'text' must be strings"])
        yield BeirDoc(id=str(record["_id"]), title=title, text=text)


def load_beir_queries(directory: Path, wanted: set[str] | None = None) -> dict[str, str]:
    """Query texts by id, only the `wanted` ones when given (queries.jsonl holds every split's)."""
    queries: dict[str, str] = {}
    for where, record in _jsonl_records(directory / "queries.jsonl"):
        query_id = str(record["_id"])
        if wanted is not None and query_id not in wanted:
            continue
        if not (isinstance(record.get("text"), str) and record["text"].strip()):
            raise DatasetError([f"{where}: 'text' must be a non-empty string"])
        queries[query_id] = record["text"]
    return queries


def load_beir_qrels(directory: Path, split: str = "test") -> dict[str, dict[str, int]]:
    """Graded relevance: query id -> {corpus id: grade}, from a TSV with a header row."""
    path = directory / "qrels" / f"{split}.tsv"
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        for number, row in enumerate(rows, start=1):
            if number == 1 and row and not row[-1].strip().lstrip("-").isdigit():
                continue  # header: query-id corpus-id score
            if not row or not "".join(row).strip():
                continue
            if len(row) != 3 or not row[2].strip().lstrip("-").isdigit():
                raise DatasetError([f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score'"])
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = int(row[2])
    if not qrels:
        raise DatasetError([f"{path}: no judgements"])
    return qrels
