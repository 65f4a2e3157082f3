"""Eval metrics against values worked out by hand."""

from __future__ import annotations

import pytest

from evals.metrics import (
    QuotedSpan,
    answer_contains,
    citation_precision,
    citation_recall,
    contains_quote,
    hit_at_k,
    mean,
    mrr_at_k,
    ndcg_at_k,
    normalise_answer,
    percentile,
    recall_at_k,
    reciprocal_rank,
    refusal_precision_recall,
    spans_match,
    token_f1,
    unique_in_order,
)

RANKED = ["d1", "d2", "d3", "d4"]
QRELS = {"d2": 2, "d3": 1, "d5": 1, "d9": 0}


def test_ndcg_uses_graded_linear_gains() -> None:
    # DCG@3 = 0 + 2/log2(3) + 1/log2(4) = 1.76186; IDCG@3 = 2 + 1/log2(3) + 1/2 = 3.13093
    assert ndcg_at_k(RANKED, QRELS, 3) == pytest.approx(0.56273, abs=1e-5)
    # @1: d1 is not relevant
    assert ndcg_at_k(RANKED, QRELS, 1) == 0.0
    assert ndcg_at_k(["d2", "d3", "d5"], QRELS, 10) == pytest.approx(1.0)
    assert ndcg_at_k(RANKED, {"d9": 0}, 10) == 0.0


def test_mrr_and_recall() -> None:
    assert mrr_at_k(RANKED, QRELS, 10) == 0.5
    assert mrr_at_k(RANKED, QRELS, 1) == 0.0
    # relevant: d2, d3, d5 (d9 has grade 0)
    assert recall_at_k(RANKED, QRELS, 3) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, QRELS, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, {}, 10) == 0.0


def test_passages_of_one_document_count_once_at_their_best_rank() -> None:
    assert unique_in_order(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_hits_and_reciprocal_rank_from_flags() -> None:
    flags = [False, False, True, False, True]
    assert [hit_at_k(flags, k) for k in (1, 2, 3, 10)] == [0.0, 0.0, 1.0, 1.0]
    assert reciprocal_rank(flags, 10) == pytest.approx(1 / 3)
    assert reciprocal_rank(flags, 2) == 0.0
    assert hit_at_k([], 5) == 0.0


def test_quote_matching_ignores_case_and_whitespace() -> None:
    passage = "Reportedly  over 400\nfirefighters participated in extinguishing the blaze."
    assert contains_quote(passage, "OVER 400 firefighters participated")
    assert not contains_quote(passage, "over 500 firefighters")
    assert not contains_quote(passage, "   ")


def test_answer_normalisation_and_containment() -> None:
    assert normalise_answer("The  Washington Post!") == "washington post"
    assert normalise_answer("“Ripley” — an Alien") == "ripley alien"
    assert answer_contains("He won with 92,153 votes.", ["92,153"])
    assert answer_contains("It was the Washington Post.", ["The Washington Post"])
    assert not answer_contains("About 100 people.", ["10"])
    assert not answer_contains("anything", [""])


def test_token_f1_is_the_best_over_golds() -> None:
    # prediction tokens: 92153, votes; gold: 92153 -> P 1/2, R 1 -> F1 2/3
    assert token_f1("the 92,153 votes", ["92,153"]) == pytest.approx(2 / 3)
    # five prediction tokens, two shared with "Bob Behnken": P 2/5, R 1 -> F1 4/7
    assert token_f1("Doug Hurley and Bob Behnken", ["Bob Behnken", "nobody"]) == pytest.approx(4 / 7)
    assert token_f1("nothing shared", ["gold"]) == 0.0


FIRE = frozenset({"notre-dame"})


def test_citation_spans_match_by_article_and_containment_or_shared_run() -> None:
    gold = QuotedSpan(FIRE, "The fire reportedly started at about 19:00 local time (1700 UTC).")
    assert spans_match(QuotedSpan(FIRE, "started at about 19:00 local time and spread fast"), gold)
    assert spans_match(QuotedSpan(FIRE, "THE FIRE REPORTEDLY started at about 19:00 local time (1700 UTC). More"), gold)
    assert not spans_match(QuotedSpan(frozenset({"other"}), gold.text), gold)
    assert not spans_match(QuotedSpan(FIRE, "the fire was put out"), gold)
    # a gold quote shorter than five words must be contained whole
    short = QuotedSpan(FIRE, "He was 86.")
    assert spans_match(QuotedSpan(FIRE, "Chirac died at home. He was 86."), short)
    assert not spans_match(QuotedSpan(FIRE, "he was 85"), short)


def test_citation_precision_and_recall() -> None:
    gold = [
        QuotedSpan(FIRE, "over 400 firefighters participated"),
        QuotedSpan(FIRE, "the two bell towers were saved"),
    ]
    cited = [
        QuotedSpan(FIRE, "Reportedly over 400 firefighters participated in extinguishing the blaze"),
        QuotedSpan(FIRE, "Officials cleared the area around the cathedral."),
    ]
    assert citation_precision(cited, gold) == 0.5
    assert citation_recall(cited, gold) == 0.5
    assert citation_precision([], gold) is None
    assert citation_recall(cited, []) is None
    assert citation_recall([], gold) == 0.0


def test_refusal_precision_and_recall() -> None:
    # (answerable, refused): refused 2, unanswerable 3, both 1
    outcomes = [(False, True), (False, False), (False, False), (True, True), (True, False)]
    precision, recall = refusal_precision_recall(outcomes)
    assert precision == 0.5
    assert recall == pytest.approx(1 / 3)
    assert refusal_precision_recall([(True, False)]) == (None, None)


def test_percentile_interpolates_and_mean_skips_undefined() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 95) == pytest.approx(38.5)  # rank 2.85: 30 + 0.85 * 10
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    assert mean([1.0, None, 0.0]) == 0.5
    assert mean([None]) is None


def test_a_metric_where_lower_is_better_regresses_when_it_rises() -> None:
    from evals.report import compare_with_baseline

    baseline = {"false_refusal_rate": 0.10, "answer_accuracy": 0.70}
    rose = compare_with_baseline({"false_refusal_rate": 0.20, "answer_accuracy": 0.70}, baseline, 0.02)
    fell = compare_with_baseline({"false_refusal_rate": 0.00, "answer_accuracy": 0.60}, baseline, 0.02)
    assert [(c.name, c.regressed) for c in rose] == [("false_refusal_rate", True), ("answer_accuracy", False)]
    assert [(c.name, c.regressed) for c in fell] == [("false_refusal_rate", False), ("answer_accuracy", True)]


def test_metrics_per_kind_are_over_that_kind_s_questions_only() -> None:
    from evals.datasets import EvalQuestion
    from evals.scoring import QuestionScore, summarise_by_kind

    def question(i: int, kind: str | None, answerable: bool) -> EvalQuestion:
        meta = {"kind": kind} if kind else {}
        return EvalQuestion(f"q{i}", "?", answerable, ("a",) if answerable else (), (), meta)

    def score(answerable: bool, refused: bool, correct: bool | None) -> QuestionScore:
        return QuestionScore(answerable, refused, [True], [True], correct, None, None, None, {"total": 1.0})

    questions = [question(1, "place", True), question(2, "person", True), question(3, "person", False)]
    questions.append(question(4, None, True))
    scores = [score(True, False, True), score(True, True, False), score(False, True, None), score(True, False, True)]
    kinds = summarise_by_kind(questions, scores)
    assert list(kinds) == ["person", "place"]  # the set's order of kinds; unkinded questions only count overall
    person, place = kinds["person"], kinds["place"]
    assert (person.questions, person.answerable, place.questions) == (2, 1, 1)
    assert person.metrics["answer_accuracy"] == 0.0 and place.metrics["answer_accuracy"] == 1.0
    assert person.metrics["false_refusal_rate"] == 1.0 and person.metrics["refusal_recall"] == 1.0
    assert place.metrics["refusal_recall"] is None
