"""Embedding backends: the exported graphs give the sentence-transformers vectors; batching and errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ingest.config import EmbeddingSettings
from ingest.embedding import Embedder, length_batches
from ingest.model_files import INT8_VERSION, EmbeddingError, calibration_texts, export_dir, read_layout

pytestmark = pytest.mark.slow

TEXTS = [
    "The central bank held its main rate at 4.5 percent on Thursday.",
    "Magnitogorsk apartment building collapses after explosion, dozens dead",
    "Rescuers, working in temperatures well below freezing, recovered at least ten survivors from the debris. " * 12,
    "ok",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return Embedder(EmbeddingSettings(backend="torch")).embed(TEXTS)


@pytest.mark.parametrize(
    ("backend", "precision", "least_cosine"),
    [
        ("openvino", "bf16", 0.999),
        ("openvino", "fp32", 0.99999),
        ("openvino", "int8", 0.93),  # "ok", three tokens; longer texts agree above 0.99
        ("onnx", "fp32", 0.99999),
        ("onnx", "int8", 0.95),
    ],
)
def test_exported_backends_match_sentence_transformers(
    backend: str, precision: str, least_cosine: float, cache_dir: Path, reference: np.ndarray
) -> None:
    embedder = Embedder(EmbeddingSettings(backend=backend, precision=precision, cache_dir=cache_dir))
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert (vectors * reference).sum(axis=1).min() >= least_cosine
    # Word pieces through the model: special tokens in, cut at the window, padding not counted.
    expected = sum(min(n + 2, embedder.max_tokens) for n in embedder.count_tokens(TEXTS))
    assert embedder.embedded_tokens == expected and embedder.padded_tokens >= expected


def test_export_is_made_once_and_reused(cache_dir: Path) -> None:
    settings = EmbeddingSettings(backend="onnx", cache_dir=cache_dir)
    first = Embedder(settings)
    first.embed(["warm"])
    exported = export_dir(first.model_path, cache_dir) / "model.onnx"
    stamp = exported.stat().st_mtime_ns
    again = Embedder(settings)
    assert np.allclose(again.embed(TEXTS[:1]), first.embed(TEXTS[:1]), atol=1e-6)
    assert exported.stat().st_mtime_ns == stamp
    assert not list(exported.parent.glob(".*"))  # no half-written leftovers


def test_length_batches_cover_every_text_once_within_the_budget() -> None:
    lengths = [5, 300, 7, 7, 120, 64, 3, 250, 9, 10]
    batches = list(length_batches(lengths, budget=256))
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        widest = max(lengths[i] for i in batch)
        assert len(batch) * widest <= 256 or len(batch) == 1  # one over-long text still goes, alone
    widths = [max(lengths[i] for i in batch) for batch in batches]
    assert widths == sorted(widths)  # shortest first: little padding in each batch


def test_openvino_int8_is_quantised_once_and_reused(cache_dir: Path) -> None:
    settings = EmbeddingSettings(backend="openvino", precision="int8", cache_dir=cache_dir)
    first = Embedder(settings)
    first.embed(["warm"])
    quantised = export_dir(first.model_path, cache_dir) / f"openvino-int8-v{INT8_VERSION}" / "model.xml"
    stamp = quantised.stat().st_mtime_ns
    again = Embedder(settings)
    assert np.allclose(again.embed(TEXTS[:1]), first.embed(TEXTS[:1]), atol=1e-6)
    assert quantised.stat().st_mtime_ns == stamp
    assert not list(quantised.parent.parent.glob(".*"))  # no half-written leftovers


def test_two_openvino_embedders_freed_in_the_order_made_leave_ctrl_c_working(cache_dir: Path) -> None:
    """OpenVINO's CPU plugin swaps the loading thread's signal stack and puts back the one it found when unloaded;
    one plugin per Embedder, freed first-made-first, left the thread on freed memory and Ctrl-C crashed."""
    script = textwrap.dedent(
        f"""
        import gc, os, signal
        from ingest.config import EmbeddingSettings
        from ingest.embedding import Embedder
        settings = EmbeddingSettings(backend="openvino", precision="fp32", cache_dir={str(cache_dir)!r})
        first = Embedder(settings)
        first.embed(["one"])
        second = Embedder(settings)
        second.embed(["two"])
        del first
        gc.collect()
        del second
        gc.collect()
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode != -signal.SIGSEGV, done.stderr[-2000:]
    assert done.returncode == 0 and "interrupted" in done.stdout, done.stderr[-2000:]


def test_auto_precision_is_int8_with_openvino_and_fp32_elsewhere() -> None:
    assert Embedder(EmbeddingSettings()).precision == "int8"
    assert Embedder(EmbeddingSettings(backend="onnx")).precision == "fp32"
    assert Embedder(EmbeddingSettings(backend="torch")).precision == "fp32"


def test_calibration_text_is_news_chunks_and_short_pieces() -> None:
    texts = calibration_texts()
    chunks = [t for t in texts if "\n" in t]  # header line, then article text
    assert len(chunks) >= 50 and all(len(t) > 200 for t in chunks)
    assert len(texts) - len(chunks) >= 50  # titles and single sentences


def test_precision_the_backend_cannot_do_is_refused() -> None:
    with pytest.raises(EmbeddingError, match=r"precision 'int8' is not available with backend 'torch'"):
        Embedder(EmbeddingSettings(backend="torch", precision="int8"))
    with pytest.raises(EmbeddingError, match=r"precision 'bf16' is not available with backend 'onnx'"):
        Embedder(EmbeddingSettings(backend="onnx", precision="bf16"))


def test_a_folder_that_cannot_be_exported_is_named(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match=r"no modules\.json"):
        read_layout(str(tmp_path))
    (tmp_path / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}])
    )
    with pytest.raises(EmbeddingError, match=r"cannot be exported; use embedding.backend=torch"):
        read_layout(str(tmp_path))


def test_int8_vectors_agree_with_fp32_on_news_text(cache_dir: Path) -> None:
    article = Path(__file__).resolve().parents[1] / "seeds" / "the-hill-dorsey-omar.txt"
    paragraphs = [p for p in article.read_text(encoding="utf-8").split("\n\n") if len(p.split()) >= 8]
    assert len(paragraphs) >= 5
    vectors = {
        precision: Embedder(EmbeddingSettings(precision=precision, cache_dir=cache_dir)).embed(paragraphs)
        for precision in ("fp32", "int8")
    }
    cosines = (vectors["fp32"] * vectors["int8"]).sum(axis=1)
    assert cosines.min() >= 0.98 and cosines.mean() >= 0.99
