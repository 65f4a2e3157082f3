"""Eval metrics as pure functions: ranking (BEIR-style and hit flags), answers, citations, refusals, latency.

Ranking metrics take a ranked list of ids (or a list of per-rank hit flags) and return a per-query value;
averaging over queries is left to the caller so that an interrupted run can be summarised the same way.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# -- document-level ranking (BEIR: graded qrels, trec_eval conventions) ------------------------------------


def unique_in_order(ids: Iterable[str]) -> list[str]:
    """Ids in first-seen order: several passages of one document count once, at their best rank."""
    seen: set[str] = set()
    out = []
    for item in ids:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gains (the relevance grade), as trec_eval's ndcg_cut and BEIR compute it."""
    gains = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    if ideal == 0:
        return 0.0
    dcg = sum(max(qrels.get(doc, 0), 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    return dcg / ideal


def mrr_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top k, else 0."""
    return reciprocal_rank([qrels.get(doc, 0) > 0 for doc in ranked], k)


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    relevant = {doc for doc, grade in qrels.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


# -- hit flags (own sets: a rank "hits" when its passage is from a gold article, or holds a gold quote) -----


def hit_at_k(flags: Sequence[bool], k: int) -> float:
    return 1.0 if any(flags[:k]) else 0.0


def reciprocal_rank(flags: Sequence[bool], k: int) -> float:
    for rank, flag in enumerate(flags[:k], start=1):
        if flag:
            return 1.0 / rank
    return 0.0


# -- matching evidence text ------------------------------------------------------------------------------

_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")


def normalise_text(text: str) -> str:
    """For finding a quote in a passage: Unicode-normalised, case-folded, whitespace collapsed."""
    text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    return " ".join(text.casefold().split())


def contains_quote(passage: str, quote: str) -> bool:
    needle = normalise_text(quote)
    return bool(needle) and needle in normalise_text(passage)


# -- answers (SQuAD-style normalisation) -----------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles (a/an/the), single spaces.

    Unicode punctuation (curly quotes, dashes) is removed too, and text is NFKC-normalised first.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_contains(answer: str, golds: Iterable[str]) -> bool:
    """A normalised gold string occurs in the normalised answer, on word boundaries ("10" is not in "100")."""
    haystack = f" {normalise_answer(answer)} "
    return any((gold := normalise_answer(g)) and f" {gold} " in haystack for g in golds)


def token_f1(answer: str, golds: Iterable[str]) -> float:
    """Best SQuAD token F1 of the answer against any gold string."""
    predicted = normalise_answer(answer).split()
    best = 0.0
    for gold in golds:
        expected = normalise_answer(gold).split()
        common = sum((Counter(predicted) & Counter(expected)).values())
        if common:
            precision, recall = common / len(predicted), common / len(expected)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


# -- citations ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuotedSpan:
    """A piece of article text: a citation's quote, or a gold evidence quote (article ids may be several)."""

    article_ids: frozenset[str]
    text: str


def spans_match(cited: QuotedSpan, gold: QuotedSpan, min_shared_words: int = 5) -> bool:
    """Same article, and one text contains the other or they share a run of words.

    The run must be `min_shared_words` long, or the whole of the shorter text when that is shorter.
    """
    if not cited.article_ids & gold.article_ids:
        return False
    a, b = normalise_text(cited.text), normalise_text(gold.text)
    if not a or not b:
        return False
    if a in b or b in a:
        return True
    words_a, words_b = a.split(), b.split()
    need = min(min_shared_words, len(words_a), len(words_b))
    runs_a = {tuple(words_a[i : i + need]) for i in range(len(words_a) - need + 1)}
    return any(tuple(words_b[i : i + need]) in runs_a for i in range(len(words_b) - need + 1))


def citation_precision(cited: Sequence[QuotedSpan], gold: Sequence[QuotedSpan]) -> float | None:
    """Share of citations that match some gold evidence; None when nothing was cited."""
    if not cited:
        return None
    return sum(any(spans_match(c, g) for g in gold) for c in cited) / len(cited)


def citation_recall(cited: Sequence[QuotedSpan], gold: Sequence[QuotedSpan]) -> float | None:
    """Share of gold evidence covered by some citation; None when there is no gold evidence."""
    if not gold:
        return None
    return sum(any(spans_match(c, g) for c in cited) for g in gold) / len(gold)


# -- refusals --------------------------------------------------------------------------------------------


def refusal_precision_recall(outcomes: Iterable[tuple[bool, bool]]) -> tuple[float | None, float | None]:
    """From (answerable, refused) pairs: precision and recall of refusing, the unanswerable being positive.

    A value is None when undefined (no refusals, or no unanswerable questions).
    """
    refused = unanswerable = right = 0
    for answerable, did_refuse in outcomes:
        refused += did_refuse
        unanswerable += not answerable
        right += did_refuse and not answerable
    return (right / refused if refused else None, right / unanswerable if unanswerable else None)


# -- latency and averages --------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values; None when there are none."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None
