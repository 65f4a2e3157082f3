"""The extractive answerer embeds a shortlist of sentences, not every sentence, and answers the same."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SEED_JSONL

from bot.answering.extractive import ExtractiveAnswerer
from bot.app import Byline
from ingest.embedding import Embedder

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What happened in Magnitogorsk?",
    "How many people died in the building collapse?",
    "Who was briefed about the rescue?",
    "What is the recipe for a good sourdough bread starter?",
]


class CountingEmbedder(Embedder):
    def __init__(self, inner: Embedder) -> None:
        self.__dict__.update(inner.__dict__)
        self.batches: list[int] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        return super().embed(texts)


def test_shortlisted_answers_match_answers_from_every_sentence(byline: Byline, embedder: Embedder) -> None:
    byline.ingest([str(SEED_JSONL)])
    counter = CountingEmbedder(embedder)
    shortlist = ExtractiveAnswerer(counter, byline.settings.answer.model_copy(update={"embed_sentences": 8}))
    everything = ExtractiveAnswerer(embedder, byline.settings.answer.model_copy(update={"embed_sentences": 0}))
    for question in QUESTIONS:
        passages = byline.retriever.search(question)
        counter.batches.clear()
        short, full = shortlist.answer(question, question, passages), everything.answer(question, question, passages)
        assert max(counter.batches) <= 8  # question embedded separately; sentences at most the shortlist
        assert (short.text, short.refused) == (full.text, full.refused), question
