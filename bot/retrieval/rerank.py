"""Optional second stage: a cross-encoder rescores the fused top passages against the question.

Off by default (no cross-encoder ships offline); when off nothing is imported or loaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class RerankError(RuntimeError):
    """The configured reranking model cannot be loaded."""


class Reranker(Protocol):
    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """How well each text answers the query; higher is better."""
        ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a local path or an installed model name, loaded on first use."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 32) -> None:
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @cached_property
    def model(self) -> CrossEncoder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline by design, like the embedder
        from sentence_transformers import CrossEncoder

        try:
            model: CrossEncoder = CrossEncoder(self.model_name, device=self.device)
        except Exception as exc:
            raise RerankError(f"cannot load reranking model {self.model_name!r}: {exc}") from exc
        return model

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        with self._lock:  # one model, shared by threads
            predicted = self.model.predict(
                [(query, text) for text in texts], batch_size=self.batch_size, show_progress_bar=False
            )
        return [float(score) for score in predicted]
