"""The extractive reader: what a question asks for, the typed spans it finds, the fact it answers with (over the
seed articles and the shared Wikinews sample), and refusal when the articles do not hold the fact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from typer.testing import CliRunner

from bot.answering.extractive import ExtractiveAnswerer
from bot.answering.extractive.asked import analyse, asked_kind
from bot.answering.extractive.reader import KeyTerms, stem
from bot.answering.extractive.spans import find_spans
from bot.app import Byline
from bot.cli.main import build_app
from bot.models import Answer
from bot.render import render_answer
from bot.retrieval.retriever import passage_from_row

# -- what the question asks for -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What was the casualty count in Hong Kong on National Day, according to health officials?", "number"),
        ("According to the report, how many aftershocks had Phivolcs recorded?", "number"),
        ("On what day did the Grayback go down?", "date"),
        ("What year was the B-17 built?", "date"),
        ("Who was born first, Stevens or Vanderbilt, and in what year?", "date"),
        ("Which minister blamed gross negligence?", "person"),
        ("For tonight's story: what was the name of the engineer killed on the travelator?", "person"),
        ("What is the full surname of the man held over the stabbing?", "person"),
        ("What was the name of the escape room business where the fire broke out?", "organisation"),
        ("The driver hit riders from which motorcycle club?", "organisation"),
        ("Quick check — where did Justice Stevens die?", "place"),
        ("Which Louisiana town were the children killed in the crash from?", "place"),
        ("How long did the flight across the Channel take?", "duration"),
        ("What was Eliud Kipchoge's marathon time?", "duration"),
        ("How old was Paweł Adamowicz?", "age"),
        ("How much was Dr Joel Smithers fined?", "money"),
        ("What is the stolen gold toilet thought to be worth?", "money"),
        ("Roughly how much diesel spilled in the crash?", "quantity"),
        ("What wind speed did the hurricane reach?", "quantity"),
        ("Why did the O'Rourke campaign cancel events?", "reason"),
        ("What was the fundraiser collecting money for?", "reason"),
        ("What did the CIA's Tony Mendez die of?", "reason"),
        ("What did the attacker use to stab the officers?", "other"),
    ],
)
def test_the_kind_of_fact_asked_for_is_read_from_real_phrasings(question: str, kind: str) -> None:
    assert asked_kind(question) == kind


def test_names_and_the_kind_named_are_told_apart_from_what_is_asked() -> None:
    asked = analyse("Which minister called the stabbing of Paweł Adamowicz an act of barbarity?")
    assert asked.kind == "person" and asked.kind_words == {"minister"}
    assert asked.topic_words == {"paweł", "adamowicz"}
    assert {"stabbing", "barbarity"} <= asked.terms and "called" not in asked.terms  # an asking word


def test_key_terms_match_by_stem_and_by_sense() -> None:
    terms = KeyTerms(frozenset({"died", "serve"}))
    assert terms.found("He was killed on Monday.") == {stem("died")}  # killed, died: one sense
    assert terms.found("35 years of public service") == {stem("serve")}  # serv- begins servic-
    assert terms.found("The dietician served dinner.") == {stem("serve")}  # "die" begins nothing it should


# -- candidate answers ------------------------------------------------------------------------------------


def spans(kind: str, sentence: str, question: str = "?") -> list[tuple[str, float]]:
    return [(s.text, s.fit) for s in find_spans(kind, sentence, question)]


@pytest.mark.parametrize(
    ("kind", "sentence", "expected"),
    [
        ("duration", "His time was 1 hour 59 minutes 40.2 seconds.", "1 hour 59 minutes 40.2 seconds"),
        ("duration", "She finished in 2:14:04.", "2:14:04"),
        ("age", "Paweł Adamowicz, 53, died the next day.", "53"),
        ("age", "The man was a 44-year-old contract worker.", "44-year-old"),
        ("money", "It is worth five to six million US dollars.", "five to six million US dollars"),
        ("money", "He was given a fine of US$86,000.", "US$86,000"),
        ("quantity", "The wreck lies at a depth of over 1400 feet.", "over 1400 feet"),
        ("quantity", "Winds reached 185 mph (295 km/h).", "185 mph"),
        ("number", "Phivolcs recorded 611 aftershocks as of Saturday.", "611"),
        ("number", "Turnout was about 67.3% in 2019.", "about 67.3%"),
        ("date", "The Grayback went down on February 26, 1944.", "February 26, 1944"),
        ("organisation", "It was owned by Truth Aquatics Inc.", "Truth Aquatics Inc"),
        ("organisation", "Chats were published by the Puerto Rico Center for Investigative Journalism.", None),
        ("place", "He died at Gleneagles Hospital in Singapore.", "Gleneagles Hospital"),
        ("person", "Rutgers political scientist Kelly Dittmar said so.", "Kelly Dittmar"),
    ],
)
def test_each_kind_of_span_is_found_whole(kind: str, sentence: str, expected: str | None) -> None:
    found = spans(kind, sentence)
    assert found, sentence
    text, fit = max(found, key=lambda s: s[1])
    assert text == (expected or "Puerto Rico Center for Investigative Journalism") and fit >= 0.7


def test_figures_of_another_kind_are_not_counts() -> None:
    sentence = "Sixty-six people were injured on October 1, 2019, ranging in age from eleven to 75."
    assert [text for text, fit in spans("number", sentence) if fit >= 0.5] == ["Sixty-six"]
    assert spans("duration", "A 15-year-old was hurt.") == []


def test_a_bound_fits_less_than_the_figure_itself() -> None:
    (bound,) = spans("duration", "He ran a marathon in less than two hours.")
    (exact,) = spans("duration", "His time was 1:59:40.2.")
    assert bound[1] < exact[1]


def test_what_year_wants_a_year_and_what_time_a_clock_time() -> None:
    sentence = "Built in 1944, it crashed on October 2, 2019 at 9:54 a.m."
    by_year = dict(spans("date", sentence, "What year was it built?"))
    by_time = dict(spans("date", sentence, "At what time did it crash?"))
    assert by_year["1944"] > by_year["October 2, 2019"]
    assert by_time["9:54 a.m."] > by_time["October 2, 2019"]


def test_names_are_typed_by_the_words_around_them() -> None:
    sentence = "Prime Minister Hubert Minnis said flights to Nassau, Bahamas resumed, the Ministry of Tourism said."
    person = dict(spans("person", sentence))
    place = dict(spans("place", sentence))
    organisation = dict(spans("organisation", sentence))
    assert person["Hubert Minnis"] == 1.0  # a title before it
    assert place["Nassau"] >= 0.85 and place["Bahamas"] == 1.0  # after "to"; a country
    assert organisation["Ministry of Tourism"] == 1.0 and person["Ministry of Tourism"] < 0.5
    # Describing words and the sentence's ordinary first word are not names.
    assert spans("person", "Italian artist Maurizio Cattelan made it.") == [("Maurizio Cattelan", 1.0)]
    assert spans("person", "Peebles and Queloz shared it.") == [("Peebles", 0.45), ("Queloz", 0.45)]


def test_what_the_question_already_names_is_not_its_answer() -> None:
    found = spans("person", "Paweł Adamowicz was stabbed by Stefan W.", "Who stabbed the mayor Adamowicz?")
    assert [text for text, _ in found] == ["Stefan W"]
    assert spans("date", "The 2019 prize went to him.", "Who won the 2019 prize?") == []


# -- answers over real articles ------------------------------------------------------------------------------

SEED_FACTS = [
    ("Who won the 2019 Nobel Prize in Physics?", ("Peebles", "Queloz", "Mayor")),
    ("Where did Robert Mugabe die?", ("Gleneagles Hospital", "Singapore")),
    ("What was Eliud Kipchoge's marathon time?", ("1 hour 59 minutes 40.2 seconds", "1:59:40")),
]


@pytest.mark.slow
@pytest.mark.parametrize(("question", "facts"), SEED_FACTS)
def test_seed_questions_are_answered_with_the_fact(seeded: Byline, question: str, facts: tuple[str, ...]) -> None:
    answer = seeded.ask(question)
    assert not answer.refused and answer.short_answer is not None
    assert any(fact in answer.short_answer for fact in facts), answer.short_answer
    lead = answer.citations[0]
    assert answer.text.startswith(lead.quote) and answer.short_answer in lead.quote
    stored = seeded.catalog.article(lead.article_id)
    assert stored is not None and stored.text[lead.start : lead.end] == lead.quote
    assert answer.to_dict()["short_answer"] == answer.short_answer
    assert render_answer(answer).startswith(f"Answer: {answer.short_answer}\n")


FIRE = {
    "url": "https://news.example/hotel-fire",
    "title": "Fire at the Harbour View Hotel",
    "date": "2019-02-12",
    "text": "A fire broke out at the Harbour View Hotel in Kvernhus early on Tuesday morning. Firefighters "
    "brought the blaze under control by 8:00am. Seventeen people died in the fire, most of them guests "
    "asleep on the upper floors. The mayor said the building had been inspected in 2017.\n\n"
    "The hotel had opened in 1998 and had recently added two floors. Officials have not said what started "
    "the fire. Survivors were taken to St Olav Hospital.",
}


@pytest.fixture
def fire(byline: Byline, tmp_path: Path) -> Byline:
    path = tmp_path / "fire.jsonl"
    path.write_text(json.dumps(FIRE) + "\n")
    assert byline.ingest([str(path)]).added == 1
    return byline


@pytest.mark.slow
def test_a_typed_fact_the_article_does_not_give_is_refused(fire: Byline) -> None:
    died = fire.ask("How many people died in the Harbour View Hotel fire?")
    assert not died.refused and died.short_answer == "Seventeen"
    taken = fire.ask("Which hospital were the survivors of the hotel fire taken to?")
    assert taken.short_answer == "St Olav Hospital"
    # The same story, a fact it does not give: no sentence about the owner names a person.
    for question in ("Who owns the Harbour View Hotel?", "How much did the Harbour View Hotel fire cost?"):
        answer = fire.ask(question)
        assert answer.refused and answer.short_answer is None and answer.to_dict()["short_answer"] is None, question


LONG_STORY = {
    "url": "https://news.example/bridge",
    "title": "Kvernhus harbour bridge reopens",
    "date": "2019-03-02",
    "text": "\n\n".join(
        [
            "The Kvernhus harbour bridge reopened on Saturday after two years of repairs to the bridge. " * 12,
            "Ferries that ran while the crossing was shut will stop next week, the council said. " * 12,
            "The council paid for the works. In all, the repairs to the bridge cost 40 million kroner, it said. "
            + "Traffic was slow on the first morning as drivers queued to cross the restored span. " * 12,
        ]
    ),
}


@pytest.mark.slow
def test_the_reader_reads_the_rest_of_the_leading_article(byline: Byline, tmp_path: Path) -> None:
    path = tmp_path / "bridge.jsonl"
    path.write_text(json.dumps(LONG_STORY) + "\n")
    assert byline.ingest([str(path)]).added == 1
    question = "How much did the repairs to the Kvernhus harbour bridge cost?"
    # Retrieval handed over only the article's first passage (as when the per-article cap leaves the rest out).
    (article_id,) = byline.catalog.resolve(LONG_STORY["url"])
    first = passage_from_row(byline.store.article_chunks([article_id])[0], 1.0)
    assert "40 million" not in first.text
    reader = ExtractiveAnswerer(byline.embedder, byline.settings.answer, read_more=byline.retriever.leading_passages)
    answer = reader.answer(question, question, [first])
    assert answer.short_answer == "40 million kroner"
    assert answer.passages[0] is first and any("40 million" in p.text for p in answer.passages[1:])
    alone = ExtractiveAnswerer(byline.embedder, byline.settings.answer).answer(question, question, [first])
    assert alone.short_answer is None and "40 million" not in alone.text and alone.passages == [first]


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "wikinews" / "wikinews-2019.jsonl").is_file(), reason="no shared data")
def test_ask_json_carries_the_short_answer_over_the_shared_articles(
    cli_runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [json.loads(line) for line in (SHARED_DATA / "wikinews" / "wikinews-2019.jsonl").open()]
    kept = [r for r in records if "Kipchoge" in r["title"] or "Mugabe" in r["title"]]
    path = tmp_path / "shared.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    app = build_app()
    assert cli_runner.invoke(app, ["ingest", str(path)]).exit_code == 0
    result = cli_runner.invoke(app, ["ask", "--json", "Where did Robert Mugabe die?"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["short_answer"] == "Gleneagles Hospital"
    result = cli_runner.invoke(app, ["ask", "--json", "What did Mugabe's dog eat for breakfast?"])
    data = json.loads(result.stdout)
    assert "short_answer" in data and data["short_answer"] is None


def test_an_answer_without_a_short_answer_renders_as_before() -> None:
    answer = Answer(question="q", text="Because of the storm. [1]", refused=False)
    assert render_answer(answer).startswith("Because of the storm.")
    assert answer.to_dict()["short_answer"] is None


@pytest.mark.slow
def test_a_typed_question_without_evidence_may_fall_back_to_a_close_sentence(fire: Byline) -> None:
    question = "Who owns the Harbour View Hotel?"
    assert fire.ask(question).refused
    fire.settings.answer.typed_fallback = -1.0  # any sentence is close enough
    del fire.__dict__["extractive"]
    fallback = fire.ask(question)
    assert not fallback.refused and fallback.short_answer is None and fallback.citations
