"""The machine's own limits for the embedding step: the best matrix-multiply rates in fp32, bf16 and int8, and the
FLOPs an encoder spends per batch. Run in a child process of the bench (`python -m evals.bench peak`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

PEAK_SIZE = 2048


def best_seconds(step: Callable[[], object], repeats: int = 5) -> float:
    step()  # warm-up: kernels chosen, memory touched
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_peak(threads: int) -> dict[str, float]:
    """Best GFLOP/s of square matrix multiplies on all cores: fp32 and bf16 by torch (oneDNN), int8 by OpenVINO
    (u8 activations x s8 weights, the kernels Byline's int8 model runs on): the embedding step's roofs."""
    import torch

    torch.set_num_threads(threads)
    flops = 2 * PEAK_SIZE**3
    result = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(PEAK_SIZE, PEAK_SIZE, dtype=dtype)
        result[f"{name}_gflops"] = flops / best_seconds(partial(torch.matmul, a, a.T.contiguous())) / 1e9
    result["int8_gflops"] = flops / best_seconds(int8_matmul(threads)) / 1e9
    return result


def int8_matmul(threads: int) -> Callable[[], object]:
    """One int8 matrix multiply as OpenVINO runs a quantised layer: activations quantised to u8 on the way in
    (FakeQuantize), weights stored as s8 and scaled; the compiled layer runs in u8 (checked)."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([PEAK_SIZE, PEAK_SIZE], np.float32)

    def scalar(v: float) -> Any:
        return ops.constant(np.float32(v))

    quantised = ops.fake_quantize(x, scalar(-4), scalar(4), scalar(-4), scalar(4), 256)
    weights = rng.integers(-127, 128, (PEAK_SIZE, PEAK_SIZE), dtype=np.int8)
    scaled = ops.multiply(ops.convert(ops.constant(weights), np.float32), scalar(0.01))
    model = ov.Model([ops.matmul(quantised, scaled, False, True)], [x])
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    compiled = ov.Core().compile_model(model, "CPU", config)
    precisions = {
        op.get_rt_info()["runtimePrecision"].astype(str)
        for op in compiled.get_runtime_model().get_ordered_ops()
        if op.get_rt_info()["layerType"].astype(str) in ("FullyConnected", "MatMul")
    }
    if precisions != {"u8"}:
        raise RuntimeError(f"the int8 matrix multiply ran in {precisions}, not u8")
    request = compiled.create_infer_request()
    a = rng.standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32)
    return lambda: request.infer({0: a})


def encoder_flops(model_path: str, tokens: int, sequences: int) -> float:
    """Forward FLOPs of a BERT-style encoder over `sequences` of mean length tokens/sequences."""
    config = json.loads((Path(model_path) / "config.json").read_text())
    layers, d, ffn = config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]
    n = tokens / max(1, sequences)
    per_sequence = layers * (2 * n * (4 * d * d + 2 * d * ffn) + 4 * n * n * d)
    return float(per_sequence * sequences)
