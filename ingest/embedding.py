"""The embedding model, loaded lazily and once; its tokenizer also counts chunk tokens.

Three backends compute the same vectors. `torch` runs sentence-transformers. `openvino` and `onnx` run a graph
exported once from the same model folder (transformer + pooling + normalisation in one graph) and cached, fed by
the model's own fast tokenizer: no torch, transformers or sentence-transformers import on the way to a vector,
and batches cut by length so little is spent on padding. OpenVINO runs int8 by default (the graph quantised once,
after calibration on news text this package ships), or bf16 / fp32 on request; ONNX Runtime runs fp32, or int8
weights quantised on the fly.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ingest.config import EmbeddingSettings
from ingest.model_files import (
    INT8_VERSION,
    EmbeddingError,
    ModelLayout,
    default_cache_dir,
    export_dir,
    export_onnx,
    quantize_int8,
    quantize_openvino_int8,
    quiet_hub,
    read_layout,
    resolve_model,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

Feed = tuple[list[int], np.ndarray, np.ndarray]  # (rows of the output, input_ids, attention_mask)


class Graph(Protocol):
    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...

    def run_all(self, feeds: Iterable[Feed], out: np.ndarray) -> None: ...


class OnnxGraph:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        outputs = self.session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
        return np.asarray(outputs[0], dtype=np.float32)

    def run_all(self, feeds: Iterable[Feed], out: np.ndarray) -> None:
        for rows, input_ids, attention_mask in feeds:
            out[rows] = self.run(input_ids, attention_mask)


@cache
def openvino_core() -> Any:
    """The process's one OpenVINO Core. Each Core loads its own CPU plugin, which points the loading thread's
    signal stack at memory of its own and, when unloaded, back at the one it found there: Cores freed out of
    the order they were made left the thread pointing at freed memory, and the next signal to it (Ctrl-C)
    killed the process with a segmentation fault."""
    import openvino as ov

    return ov.Core()


class OpenVinoGraph:
    """Two compilations of one model, each made on first use: one tuned for a single request (a question,
    an answer's sentences), one running several requests at once for bulk work (ingest), ~14% more tokens/s."""

    def __init__(self, path: Path, threads: int, precision: str, cache: Path) -> None:
        self.core = openvino_core()
        self.path = path
        self.config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": threads,
            "CACHE_DIR": str(cache),  # the compiled blob: later processes skip most of the compile
        }
        if precision in ("fp32", "bf16"):  # else (int8) OpenVINO's choice for what is not quantised
            self.config["INFERENCE_PRECISION_HINT"] = {"fp32": "f32", "bf16": "bf16"}[precision]

    @cached_property
    def request(self) -> Any:
        config = {**self.config, "PERFORMANCE_HINT": "LATENCY"}
        return self.core.compile_model(str(self.path), "CPU", config).create_infer_request()

    @cached_property
    def queue(self) -> Any:
        import openvino as ov

        # No per-shape kernel cache: with every batch a new (rows, width) shape it grew to ~1 GB per stream
        # over a SciFact ingest, and dropping it cost no measurable speed.
        config = {**self.config, "PERFORMANCE_HINT": "THROUGHPUT", "CPU_RUNTIME_CACHE_CAPACITY": 0}
        compiled = self.core.compile_model(str(self.path), "CPU", config)
        return ov.AsyncInferQueue(compiled)  # as many requests as the streams OpenVINO chose

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        result = self.request.infer({"input_ids": input_ids, "attention_mask": attention_mask})
        return np.asarray(result[0], dtype=np.float32)

    def run_all(self, feeds: Iterable[Feed], out: np.ndarray) -> None:
        queue = self.queue

        def done(request: Any, rows: list[int]) -> None:
            out[rows] = request.get_output_tensor(0).data  # copied before the request is reused

        queue.set_callback(done)
        for rows, input_ids, attention_mask in feeds:
            queue.start_async({"input_ids": input_ids, "attention_mask": attention_mask}, rows)
        queue.wait_all()


_PRECISIONS = {
    "torch": ("auto", "fp32"),
    "onnx": ("auto", "fp32", "int8"),
    "openvino": ("auto", "fp32", "bf16", "int8"),
}
# What "auto" means for each backend.
_AUTO_PRECISION = {"torch": "fp32", "onnx": "fp32", "openvino": "int8"}


def length_batches(lengths: list[int], budget: int) -> Iterator[list[int]]:
    """Indices grouped shortest first so each batch pads little; rows x longest row stays within `budget`."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batch: list[int] = []
    for index in order:
        if batch and (len(batch) + 1) * lengths[index] > budget:
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


class Embedder:
    """Embeds texts into unit vectors. Nothing heavy is imported until a text is embedded or counted."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self.model_path = resolve_model(settings.model)
        self._lock = threading.Lock()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        if settings.precision not in _PRECISIONS[settings.backend]:
            allowed = ", ".join(_PRECISIONS[settings.backend])
            raise EmbeddingError(
                f"embedding.precision {settings.precision!r} is not available with backend "
                f"{settings.backend!r} (choose {allowed})"
            )
        self.precision = _AUTO_PRECISION[settings.backend] if settings.precision == "auto" else settings.precision
        self.embedded_tokens = 0  # word pieces fed to the model, padding excluded (for throughput figures)
        self.padded_tokens = 0  # ... and including padding

    @cached_property
    def identity(self) -> str:
        """Names the vectors: model, backend-independent (backends give the same vectors within rounding)."""
        return hashlib.sha256(f"{self.settings.model}".encode()).hexdigest()[:10]

    @cached_property
    def threads(self) -> int:
        return self.settings.threads or os.cpu_count() or 1

    @cached_property
    def model(self) -> SentenceTransformer:
        """The sentence-transformers model (the torch backend; also what the other backends are exported from)."""
        quiet_hub()
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        if self.settings.threads:
            import torch

            torch.set_num_threads(self.settings.threads)
        try:
            return SentenceTransformer(self.model_path, device=self.settings.device)
        except Exception as exc:
            raise EmbeddingError(f"cannot load embedding model {self.settings.model!r}: {exc}") from exc

    @cached_property
    def layout(self) -> ModelLayout:
        return read_layout(self.model_path)

    @cached_property
    def graph(self) -> Graph:
        """The exported model for the onnx/openvino backends, exporting it on first use."""
        folder = export_dir(self.model_path, self.settings.cache_dir or default_cache_dir())
        folder.mkdir(parents=True, exist_ok=True)
        onnx_file = folder / "model.onnx"
        try:
            if not onnx_file.is_file():
                quiet_hub()
                export_onnx(self.model_path, self.layout, onnx_file)
            if self.settings.backend == "openvino":
                model_file = onnx_file
                if self.precision == "int8":
                    int8_folder = folder / f"openvino-int8-v{INT8_VERSION}"
                    if not (int8_folder / "model.xml").is_file():
                        quantize_openvino_int8(onnx_file, int8_folder, self.window_tokenizer)
                    model_file = int8_folder / "model.xml"
                try:
                    return OpenVinoGraph(model_file, self.threads, self.precision, folder / "openvino")
                except ImportError as exc:
                    raise EmbeddingError(
                        "embedding.backend=openvino needs the openvino package: pip install openvino"
                    ) from exc
            if self.precision == "int8":
                int8_file = folder / "model-int8.onnx"
                if not int8_file.is_file():
                    quantize_int8(onnx_file, int8_file)
                onnx_file = int8_file
            return OnnxGraph(onnx_file, self.threads)
        except EmbeddingError:
            raise
        except Exception as exc:
            raise EmbeddingError(
                f"cannot prepare the {self.settings.backend} backend for {self.settings.model!r} in {folder}: {exc}"
            ) from exc

    @cached_property
    def max_tokens(self) -> int:
        """The model's window in word pieces, special tokens included."""
        config = Path(self.model_path) / "sentence_bert_config.json"
        if config.is_file():
            return int(json.loads(config.read_text())["max_seq_length"])
        return int(self.model.max_seq_length or 512)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """Counts and locates word pieces: no special tokens, no padding, no truncation."""
        tokenizer = self._load_tokenizer()
        # tokenizer.json files often carry padding/truncation settings (MiniLM's: 128); counting needs neither.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return tokenizer

    @cached_property
    def window_tokenizer(self) -> Tokenizer:
        """Feeds the exported graph: special tokens added, cut at the model's window, as sentence-transformers does."""
        tokenizer = self._load_tokenizer()
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_tokens)
        return tokenizer

    def _load_tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer

        local = Path(self.model_path) / "tokenizer.json"
        if local.is_file():
            return Tokenizer.from_file(str(local))
        return Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())

    def token_offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character offsets of each text's word pieces (no special tokens)."""
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [list(e.offsets) for e in encodings]

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    @property
    def dimension(self) -> int:
        if self.settings.backend == "torch":
            return int(self.model.get_embedding_dimension() or 0)
        return self.layout.dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.settings.backend == "torch":
            return self._embed_torch(texts)
        return self._embed_graph(texts)

    def _embed_torch(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # one model, shared by threads (Slack workers)
            vectors = self.model.encode(
                texts,
                batch_size=self.settings.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _embed_graph(self, texts: list[str]) -> np.ndarray:
        encodings = self.window_tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        batches = list(length_batches(lengths, self.settings.batch_tokens))

        def feeds() -> Iterator[Feed]:
            for batch in batches:
                width = max(lengths[i] for i in batch)
                input_ids = np.zeros((len(batch), width), dtype=np.int64)
                attention_mask = np.zeros((len(batch), width), dtype=np.int64)
                for row, index in enumerate(batch):
                    input_ids[row, : lengths[index]] = encodings[index].ids
                    attention_mask[row, : lengths[index]] = 1
                self.embedded_tokens += sum(lengths[i] for i in batch)
                self.padded_tokens += input_ids.size
                yield batch, input_ids, attention_mask

        graph = self.graph
        with self._lock:  # one compiled model, shared by threads (Slack workers)
            if len(batches) == 1:
                ((rows, input_ids, attention_mask),) = feeds()
                vectors[rows] = graph.run(input_ids, attention_mask)
            else:
                graph.run_all(feeds(), vectors)
        return vectors

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
