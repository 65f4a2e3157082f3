"""`byline bench`: Byline against the LangChain tutorial pipeline, in one run, on the same data and machine.

Every ingest runs in its own process (`os.wait4` gives its wall time, CPU time and peak RSS honestly, start-up
included), several times, alternating Byline and the tutorial (A B A B ...) so that a machine whose speed drifts
(shared, throttled) moves both sides of each pair alike: ratios are taken pair by pair and reported as median,
min and max. Query latencies are measured warm, in-process. Also: the machine's matrix-multiply peaks in fp32,
bf16 and int8 in the same run (the physical limits of the embedding step), scale curves on corpora synthesised
from Wikinews paragraphs, and a Markdown summary with a PNG chart.

The tutorial pipeline is the one a user would otherwise write: RecursiveCharacterTextSplitter(1000, 200),
HuggingFaceEmbeddings with the same bundled model, Chroma.from_documents, similarity_search(k=5).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from evals.bench_catalog import catalog_env, catalog_settings

TUTORIAL_CHUNK_SIZE = 1000
TUTORIAL_CHUNK_OVERLAP = 200
FULL_SCALE = (1_000, 10_000, 100_000)
QUICK_SCALE = (100, 300)
# Scale corpora use shorter chunks so the 100k-chunk point fits in one run on a small machine; the number of
# vectors, which is what query latency grows with, is the same.
SCALE_CHUNK_TOKENS = 96


@dataclass
class Options:
    out: Path
    scifact: Path
    wikinews: Path
    quick: bool = False
    scale: tuple[int, ...] = FULL_SCALE
    queries: int = 100
    cold_runs: int = 3
    pairs: int = 3  # ingests of each corpus per pipeline, alternating
    skip_tutorial: bool = False
    scifact_limit: int | None = None  # articles taken from SciFact (None: all 5,183)
    wikinews_limit: int | None = None
    catalog: str | None = None  # a PostgreSQL server for the catalogs (None: SQLite under each home)

    @classmethod
    def quick_run(cls, out: Path, scifact: Path, wikinews: Path) -> Options:
        return cls(out, scifact, wikinews, True, QUICK_SCALE, 10, 1, 1, False, 60, 20)


@dataclass
class ProcessRun:
    """One child process: what it printed (JSON) and what the kernel says it cost."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    result: dict[str, Any] = field(default_factory=dict)


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message names the step."""


def run_child(argv: Sequence[str], env: dict[str, str] | None = None, what: str = "") -> ProcessRun:
    """Run a command to completion; its last stdout line is JSON. Wall time includes interpreter start-up."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(list(argv), stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    lines = [line for line in stdout.splitlines() if line.strip()]
    if process.returncode not in (0, 1) or not lines:
        raise BenchError(f"{what or argv[0]} failed (exit {process.returncode}): {stderr.strip()[-2000:]}")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError:
        result = {"output": lines[-1]}
    # Linux reports ru_maxrss in KiB.
    return ProcessRun(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, result)


def python_child(role: str, *args: str, env: dict[str, str] | None = None) -> ProcessRun:
    return run_child([sys.executable, "-m", "evals.bench", role, *args], env, role)


def byline_child(*args: str, env: dict[str, str]) -> ProcessRun:
    return run_child([sys.executable, "-c", "from bot.cli.main import main; main()", *args], env, f"byline {args[0]}")


# -- data ----------------------------------------------------------------------------------------------


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
                if limit is not None and len(records) >= limit:
                    break
    return records


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def scifact_articles(corpus: Path, limit: int | None, target: Path) -> Path:
    """SciFact abstracts as plain article records (title + text), as a user would feed them."""
    records = ({"title": r.get("title") or "", "text": r["text"]} for r in read_jsonl(corpus, limit))
    return write_jsonl(target, records)


def scifact_questions(queries: Path, n: int) -> list[str]:
    return [r["text"] for r in read_jsonl(queries, n)]


def synthesise(wikinews: Path, chunks: int, tokens_per_chunk: int, target: Path, seed: int = 7) -> Path:
    """About `chunks` chunks of new articles, each three to six Wikinews paragraphs recombined at random."""
    source = read_jsonl(wikinews)
    paragraphs = [p.strip() for r in source for p in r["text"].split("\n\n") if len(p.split()) >= 12]
    rng = random.Random(seed)
    # ~1.3 word pieces a word; a chunk holds tokens_per_chunk minus its header and the repeated overlap
    # sentence (calibrated: 96-token chunks hold about 28 new words).
    words_per_chunk = max(10, int((tokens_per_chunk - 24) / 1.3 * 0.5))
    records, budget, n = [], chunks * words_per_chunk, 0
    while budget > 0:
        picked = rng.sample(paragraphs, rng.randint(3, 6))
        base = source[rng.randrange(len(source))]
        n += 1
        records.append(
            {
                "id": f"synthetic-{n}",
                "title": f"{base['title']} ({n})",
                "date": base.get("date"),
                "text": "\n\n".join(picked),
            }
        )
        budget -= sum(len(p.split()) for p in picked)
    return write_jsonl(target, records)


# -- the tutorial pipeline (child process) -------------------------------------------------------------


def tutorial_ingest(corpus: Path, home: Path, questions: list[str]) -> dict[str, Any]:
    """The LangChain tutorial: split 1000/200, HuggingFaceEmbeddings, Chroma.from_documents, similarity_search."""
    started = time.perf_counter()
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ingest.model_files import resolve_model

    embed_seconds = 0.0

    class TimedEmbeddings(HuggingFaceEmbeddings):
        """The tutorial's embeddings, timed (the only instrumentation)."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            nonlocal embed_seconds
            t = time.perf_counter()
            vectors = super().embed_documents(texts)
            embed_seconds += time.perf_counter() - t
            return vectors

    embeddings = TimedEmbeddings(model_name=resolve_model("all-MiniLM-L6-v2"), model_kwargs={"device": "cpu"})
    ready = time.perf_counter()
    docs = [Document(page_content=r["text"], metadata={"title": r.get("title") or ""}) for r in read_jsonl(corpus)]
    splits = RecursiveCharacterTextSplitter(
        chunk_size=TUTORIAL_CHUNK_SIZE, chunk_overlap=TUTORIAL_CHUNK_OVERLAP
    ).split_documents(docs)
    store = Chroma.from_documents(splits, embeddings, persist_directory=str(home / "chroma"))
    ingested = time.perf_counter()
    for question in questions[:3]:  # warm-up, as for Byline
        store.similarity_search(question, k=5)
    latencies = []
    for question in questions:
        t = time.perf_counter()
        store.similarity_search(question, k=5)
        latencies.append((time.perf_counter() - t) * 1000)
    tokenizer = embeddings._client.tokenizer
    window = int(embeddings._client.max_seq_length or 512)
    lengths = [min(len(ids), window) for ids in tokenizer([d.page_content for d in splits])["input_ids"]]
    return {
        "articles": len(docs),
        "chunks": len(splits),
        "embedded_tokens": sum(lengths),
        "mean_tokens": sum(lengths) / max(1, len(lengths)),
        "startup_s": ready - started,
        "ingest_s": ingested - ready,
        "embed_s": embed_seconds,
        "query_ms": percentiles(latencies),
    }


# -- the machine's limit (child process) ---------------------------------------------------------------


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
        raise BenchError(f"the int8 matrix multiply ran in {precisions}, not u8")
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


# -- Byline side ---------------------------------------------------------------------------------------


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    if not samples_ms:
        return {"p50": float("nan"), "p95": float("nan"), "n": 0}
    ordered = sorted(samples_ms)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "n": len(ordered),
    }


def byline_ingest(corpus: Path, home: Path, extra_env: dict[str, str] | None = None) -> ProcessRun:
    env = {"BYLINE_HOME": str(home), **(extra_env or {})}
    return byline_child("ingest", "--json", str(corpus), env=env)


def warm_queries(home: Path, questions: list[str], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Retrieval and retrieve+answer latencies in this process, after a warm-up, over the index in `home`."""
    from bot.app import Byline
    from bot.settings import load_settings

    byline = Byline(load_settings(home=home, **(overrides or {})))
    for question in questions[:3]:
        byline.ask(question)
    retrieve, answer, answer_only = [], [], []
    for question in questions:
        byline.embedder._query_cache.clear()  # each question pays for its own embedding
        t = time.perf_counter()
        byline.retriever.search(question)
        retrieve.append((time.perf_counter() - t) * 1000)
        byline.embedder._query_cache.clear()
        t = time.perf_counter()
        result = byline.ask(question)
        answer.append((time.perf_counter() - t) * 1000)
        answer_only.append(result.timings_ms.get("answer", 0.0))
    figures = {
        "retrieve_ms": percentiles(retrieve),
        "ask_ms": percentiles(answer),
        "answer_step_ms": percentiles(answer_only),
        "chunks_indexed": byline.store.count(),
    }
    byline.catalog.close()
    return figures


def cold_ask(home: Path, question: str, runs: int, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    env = {"BYLINE_HOME": str(home), **(extra_env or {})}
    walls = [byline_child("ask", "--json", question, env=env).wall_s for _ in range(runs)]
    return {"wall_s": statistics.median(walls), "runs": walls}


def ingest_figures(run: ProcessRun, model_path: str) -> dict[str, Any]:
    r = run.result
    articles = r.get("articles", r.get("added", 0) + r.get("updated", 0) + r.get("unchanged", 0))
    tokens = r.get("embedded_tokens", 0)
    embed_s = r.get("embed_seconds", r.get("embed_s", 0.0))
    figures = {
        "articles": articles,
        "chunks": r.get("chunks", 0),
        "embedded_tokens": tokens,
        "wall_s": run.wall_s,
        "cpu_s": run.cpu_s,
        "peak_rss_mb": run.peak_rss_mb,
        "articles_per_s": articles / run.wall_s,
        "chunks_per_s": r.get("chunks", 0) / run.wall_s,
        "tokens_per_s": tokens / run.wall_s,
        "embed_s": embed_s,
    }
    if embed_s and tokens:
        figures["embed_gflops"] = encoder_flops(model_path, tokens, r.get("chunks", 1)) / embed_s / 1e9
    return figures


def fresh(home: Path) -> Path:
    shutil.rmtree(home, ignore_errors=True)
    return home


def spread(values: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "pairs": list(values)}


def pair_ratios(byline: Sequence[dict[str, Any]], tutorial: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Byline / tutorial for wall time, CPU time and peak RSS, pair by pair (below 1: Byline spends less)."""
    return {
        key: spread([b[key] / t[key] for b, t in zip(byline, tutorial, strict=True)])
        for key in ("wall_s", "cpu_s", "peak_rss_mb")
    }


def median_run(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time (the lower middle one of an even count), reported in the tables."""
    return sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2]


# -- the whole run -------------------------------------------------------------------------------------


Say = Callable[[str], None]


def run_bench(options: Options, say: Say = print) -> dict[str, Any]:
    from bot.settings import Settings
    from ingest.embedding import Embedder
    from ingest.model_files import resolve_model

    out = options.out
    data, homes = out / "data", out / "homes"
    data.mkdir(parents=True, exist_ok=True)
    model_path = resolve_model("all-MiniLM-L6-v2")
    defaults = Settings(home=out)
    results: dict[str, Any] = {
        "machine": machine_facts(),
        "settings": {
            "backend": defaults.embedding.backend,
            "precision": Embedder(defaults.embedding).precision,  # what "auto" stands for
            "quick": options.quick,
            "catalog": "postgresql" if options.catalog else "sqlite",
        },
    }

    say("matrix-multiply peaks ...")
    results["peak"] = peak = python_child("peak", str(os.cpu_count() or 1)).result
    say(
        f"  fp32 {_f(peak['fp32_gflops'], 0)}, bf16 {_f(peak['bf16_gflops'], 0)}, "
        f"int8 {_f(peak['int8_gflops'], 0)} GFLOP/s"
    )

    tiny = write_jsonl(data / "one-article.jsonl", read_jsonl(options.wikinews, 1))
    say("start-up (one-article ingest) ...")
    startup: dict[str, list[float]] = {"byline": [], "tutorial": []}
    for _ in range(options.pairs):
        home = fresh(homes / "startup-byline")
        startup["byline"].append(byline_ingest(tiny, home, catalog_env(options.catalog, home, fresh=True)).wall_s)
        if not options.skip_tutorial:
            home = fresh(homes / "startup-tutorial")
            startup["tutorial"].append(python_child("tutorial", str(tiny), str(home), "[]").wall_s)
    results["startup_s"] = {who: spread(walls) for who, walls in startup.items() if walls}

    questions = scifact_questions(options.scifact.parent / "queries.jsonl", options.queries)
    for name, corpus in (
        ("scifact", scifact_articles(options.scifact, options.scifact_limit, data / "scifact-articles.jsonl")),
        ("wikinews", write_jsonl(data / "wikinews.jsonl", read_jsonl(options.wikinews, options.wikinews_limit))),
    ):
        asks = questions if name == "scifact" else [r["title"] for r in read_jsonl(corpus, options.queries)]
        runs: dict[str, list[dict[str, Any]]] = {"byline": [], "tutorial": []}
        for pair in range(1, options.pairs + 1):
            say(f"{name}: Byline ingest ({pair}/{options.pairs}) ...")
            home = fresh(homes / f"{name}-byline")
            run = byline_ingest(corpus, home, catalog_env(options.catalog, home, fresh=True))
            runs["byline"].append(ingest_figures(run, model_path))
            if options.skip_tutorial:
                continue
            say(f"{name}: tutorial pipeline ({pair}/{options.pairs}) ...")
            home = fresh(homes / f"{name}-tutorial")
            run = python_child("tutorial", str(corpus), str(home), json.dumps(asks))
            runs["tutorial"].append(
                ingest_figures(run, model_path)
                | {"query": {"retrieve_ms": run.result["query_ms"]}, "startup_in_process_s": run.result["startup_s"]}
            )
            wall = runs["byline"][-1]["wall_s"] / runs["tutorial"][-1]["wall_s"]
            say(f"  Byline / tutorial wall time: {wall:.3f}")
        side: dict[str, Any] = {who: median_run(r) for who, r in runs.items() if r}
        side["runs"] = runs
        # Queries against the index the last Byline ingest left (each ingest built the same index).
        home = homes / f"{name}-byline"
        side["byline"]["query"] = warm_queries(home, asks, catalog_settings(options.catalog, home))
        side["byline"]["cold_ask"] = cold_ask(home, asks[0], options.cold_runs, catalog_env(options.catalog, home))
        if runs["tutorial"]:
            side["ratio"] = ratio = pair_ratios(runs["byline"], runs["tutorial"])
            say(f"{name}: {ratio_line(ratio['wall_s'])}")
        results[name] = side
        save(results, out)

    scale_env = {"BYLINE_CHUNK_MAX_TOKENS": str(SCALE_CHUNK_TOKENS)}
    results["scale"] = []
    for size in options.scale:
        say(f"scale: {size} chunks ...")
        corpus = synthesise(options.wikinews, size, SCALE_CHUNK_TOKENS, data / f"scale-{size}.jsonl")
        home = homes / f"scale-{size}"
        point = ingest_figures(
            byline_ingest(corpus, home, scale_env | catalog_env(options.catalog, home, fresh=True)), model_path
        )
        titles = [r["title"].rsplit(" (", 1)[0] for r in read_jsonl(options.wikinews, options.queries)]
        overrides = {"chunk": {"max_tokens": SCALE_CHUNK_TOKENS}, **catalog_settings(options.catalog, home)}
        point["query"] = warm_queries(home, titles, overrides)
        results["scale"].append(point)
        save(results, out)

    write_summary(results, out / "summary.md")
    write_chart(results, out / "bench.png")
    return results


def save(results: dict[str, Any], out: Path) -> None:
    """Figures so far, so an interrupted run still leaves what it measured."""
    (out / "results.json").write_text(json.dumps(results, indent=2))


def machine_facts() -> dict[str, Any]:
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cores": os.cpu_count(),
        "avx512_vnni": "avx512_vnni" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "load_average_at_start": load[0],
    }


# -- report --------------------------------------------------------------------------------------------


def _f(value: Any, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else "-"


def ratio_line(wall: dict[str, Any]) -> str:
    pairs = len(wall["pairs"])
    return (
        f"Byline / tutorial wall time {wall['median']:.3f} median of {pairs} alternating pair{'s' * (pairs > 1)} "
        f"(min {wall['min']:.3f}, max {wall['max']:.3f}): {1 / wall['median']:.2f}x faster"
    )


PIPELINES = ("byline", "tutorial")


def write_summary(results: dict[str, Any], path: Path) -> None:
    peak = results["peak"]
    pairs = max(len(results[name].get("runs", {}).get("byline", [])) for name in ("scifact", "wikinews"))
    lines = [
        "# Byline benchmark",
        "",
        f"Machine: {results['machine']['cores']} cores, load average {results['machine']['load_average_at_start']:.1f}"
        f" at start; matrix-multiply peaks {_f(peak['fp32_gflops'], 0)} GFLOP/s fp32, "
        f"{_f(peak['bf16_gflops'], 0)} bf16, {_f(peak['int8_gflops'], 0)} int8.",
        f"Byline embedding backend: {results['settings']['backend']} ({results['settings']['precision']}); "
        f"catalog: {results['settings'].get('catalog', 'sqlite')}.",
        "",
        f"## Ingest (whole command, start-up included, each in its own process; {pairs} run(s) of each, alternating;"
        " the run with the median wall time shown)",
        "",
        "| corpus | pipeline | articles | chunks | wall s | CPU s | articles/s | chunks/s | tokens/s |"
        " peak RSS MB | embed GFLOP/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("scifact", "wikinews"):
        for who in PIPELINES:
            if (row := results[name].get(who)) is None:
                continue
            lines.append(
                f"| {name} | {who} | {row['articles']} | {row['chunks']} | {_f(row['wall_s'])} | {_f(row['cpu_s'])} |"
                f" {_f(row['articles_per_s'])} | {_f(row['chunks_per_s'])} | {_f(row['tokens_per_s'], 0)} |"
                f" {_f(row['peak_rss_mb'], 0)} | {_f(row.get('embed_gflops'))} |"
            )
    lines.append("")
    for name in ("scifact", "wikinews"):
        if ratio := results[name].get("ratio"):
            cpu, rss = ratio["cpu_s"], ratio["peak_rss_mb"]
            lines.append(
                f"- {name}: {ratio_line(ratio['wall_s'])}; CPU time {cpu['median']:.3f} "
                f"(min {cpu['min']:.3f}, max {cpu['max']:.3f}); peak RSS {rss['median']:.2f}."
            )
        if gflops := results[name]["byline"].get("embed_gflops"):
            lines.append(
                f"- {name}: Byline's embedding step ran at {gflops:,.0f} GFLOP/s, "
                f"{gflops / peak['int8_gflops']:.0%} of the int8 peak, {gflops / peak['bf16_gflops']:.0%} of bf16."
            )
    startup = results["startup_s"]
    lines += [
        "- Start-up (one-article ingest, median): "
        + ", ".join(f"{who} {startup[who]['median']:.2f} s" for who in PIPELINES if who in startup)
        + ".",
        "",
        "## Queries (warm, in-process; ms)",
        "",
        "| index | pipeline | chunks | retrieve p50 | retrieve p95 | retrieve+answer p50 | retrieve+answer p95 |"
        " cold `byline ask` s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("scifact", "wikinews"):
        for who in PIPELINES:
            if (row := results[name].get(who)) is None:
                continue
            q = row["query"]
            ask = q.get("ask_ms", {})
            cold = row.get("cold_ask", {}).get("wall_s")
            lines.append(
                f"| {name} | {who} | {row['chunks']} | {_f(q['retrieve_ms']['p50'])} | {_f(q['retrieve_ms']['p95'])} |"
                f" {_f(ask.get('p50'))} | {_f(ask.get('p95'))} | {_f(cold, 2)} |"
            )
    lines += [
        "",
        f"## Scale (synthetic Wikinews recombinations, {SCALE_CHUNK_TOKENS}-token chunks)",
        "",
        "| chunks | articles | ingest wall s | CPU s | chunks/s | peak RSS MB | retrieve p50 | retrieve p95 |"
        " retrieve+answer p50 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in results["scale"]:
        q = point["query"]
        lines.append(
            f"| {point['chunks']} | {point['articles']} | {_f(point['wall_s'])} | {_f(point['cpu_s'])} |"
            f" {_f(point['chunks_per_s'])} | {_f(point['peak_rss_mb'], 0)} | {_f(q['retrieve_ms']['p50'])} |"
            f" {_f(q['retrieve_ms']['p95'])} | {_f(q['ask_ms']['p50'])} |"
        )
    lines += ["", "![scale curves](bench.png)", ""]
    path.write_text("\n".join(lines))


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results["scale"]
    chunks = [p["chunks"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(chunks, [p["wall_s"] for p in points], "o-", label="ingest wall s")
    left.plot(chunks, [p["cpu_s"] for p in points], "s--", label="ingest CPU s")
    if chunks and points[0]["wall_s"]:
        left.plot(chunks, [points[0]["wall_s"] * c / chunks[0] for c in chunks], ":", color="grey", label="linear")
    left.set(xscale="log", yscale="log", xlabel="chunks", ylabel="seconds", title="Ingest")
    left.legend()
    for key, label in (("retrieve_ms", "retrieve"), ("ask_ms", "retrieve + answer")):
        right.plot(chunks, [p["query"][key]["p50"] for p in points], "o-", label=f"{label} p50")
        right.plot(chunks, [p["query"][key]["p95"] for p in points], "x:", label=f"{label} p95")
    right.set(xscale="log", xlabel="chunks in the index", ylabel="ms (warm)", title="Query latency")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- child entry point ---------------------------------------------------------------------------------


def _child(argv: list[str]) -> None:
    role, *args = argv
    if role == "tutorial":
        corpus, home, questions = Path(args[0]), Path(args[1]), json.loads(args[2])
        result: dict[str, Any] = tutorial_ingest(corpus, home, questions)
    elif role == "peak":
        result = matmul_peak(int(args[0]))
    else:
        raise SystemExit(f"unknown role {role!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _child(sys.argv[1:])
