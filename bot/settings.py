"""Byline's one settings object: env vars (`BYLINE_` prefix), an optional TOML file, CLI flags on top.

Built once at the edge (CLI, Slack app) with `load_settings` and passed down; nothing else reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.config import (
    ChunkSettings,
    EmbeddingSettings,
    Group,
    IngestSettings,
    StoreSettings,
    WebSettings,
)


class RetrievalSettings(Group):
    k: int = Field(5, ge=1, description="Passages handed to the answerer.")
    candidates: int = Field(50, ge=1, description="Hits taken from each index before fusion.")
    fusion: Literal["rrf", "weighted"] = Field(
        "weighted",
        description="How dense and lexical rankings are fused: weighted sum of min-max scaled scores, or "
        "weighted reciprocal-rank fusion (measured: weighted is better on SciFact and the news dev set).",
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in fusion.")
    lexical_weight: float = Field(1.0, ge=0, description="Weight of the lexical (BM25) ranking in fusion.")
    per_article: int = Field(2, ge=1, description="At most this many passages from one article.")
    title_weight: float = Field(
        1.0, ge=0, description="Weight of a match in the article title against one in the chunk text (BM25)."
    )
    common_term_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="In indexes of 10,000+ chunks, BM25 leaves out query words found in more than this share of "
        "chunks while rarer ones remain (they weigh little and cost most of the time); 1 keeps every word.",
    )
    rerank_model: str | None = Field(None, description="Optional sentence-transformers CrossEncoder.")
    rerank_depth: int = Field(30, ge=1, description="Fused passages the cross-encoder rescores, when one is set.")
    recency: bool = Field(False, description="Prefer recent articles for 'latest'-style questions.")
    recency_half_life_days: float = Field(30.0, gt=0, description="Age at which the recency boost halves.")


class AnswerSettings(Group):
    min_support: float = Field(
        0.40,
        description="Refuse a question that asks for no typed fact (a reason, anything else) when the best sentence "
        "scores below this (calibrated on dev questions); one asking for a name, date, figure … is refused when no "
        "sentence about it holds one.",
    )
    typed_fallback: float = Field(
        0.60,
        description="A question for a name, date, figure … that no sentence about it holds is still answered "
        "with its best sentence (and no short answer) when that sentence scores at least this (calibrated on dev "
        "questions); above 1 refuses every such question.",
    )
    max_sentences: int = Field(3, ge=1, description="Sentences in an extractive answer.")
    read_articles: int = Field(
        2,
        ge=0,
        description="The extractive reader also reads every other passage of this many leading articles, beyond "
        "the retrieved ones (the per-article cap can leave the fact-bearing passage out); 0 reads only those.",
    )
    embed_sentences: int = Field(
        16,
        ge=0,
        description="Sentences embedded per extractive answer, shortlisted by word overlap and passage "
        "similarity; 0 embeds every sentence of every passage.",
    )
    unsupported: Literal["mark", "remove"] = Field(
        "remove", description="What to do with an LLM sentence its citation does not support."
    )


class LLMSettings(Group):
    provider: Literal["openai", "anthropic", "ollama"] = Field("openai", description="Chat model provider.")
    model: str | None = Field(None, description="Model name, e.g. gpt-4o-mini.")
    judge_model: str | None = Field(
        None,
        description="Model that grades answers in `byline eval` (same provider and endpoint); default `model`. "
        "A stronger model than the answering one, so the judge does not grade its own answers.",
    )
    base_url: str | None = Field(None, description="Endpoint URL (any OpenAI-compatible server for openai).")
    api_key: SecretStr | None = Field(None, description="API key; defaults to the provider's usual env var.")
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(600, ge=1, description="Most tokens the model may write.")
    context_tokens: int = Field(6000, ge=256, description="Token budget for the sources in the prompt.")
    timeout: float = Field(
        60.0,
        gt=0,
        le=600,
        description="Seconds one question may wait for the model, retries and condensing a follow-up included; "
        "then the checked part already shown stands, or the extractive answer is shown with a notice.",
    )
    retries: int = Field(2, ge=0, description="Retries on timeouts, 429 and 5xx, while `timeout` allows.")
    history_turns: int = Field(6, ge=0, description="Conversation turns kept for follow-ups.")
    retry_backoff: float = Field(1.0, ge=0, description="Seconds before the first retry; doubles each retry.")
    min_support: float = Field(
        0.35,
        ge=0,
        le=1,
        description="Least support (mean of word overlap and embedding cosine) for a cited sentence to count.",
    )
    max_new_words: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Most of a cited sentence's content words that may be in neither the question nor the article.",
    )
    min_relevance: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Least relevance (mean of embedding cosine and question-word overlap) of a supported sentence "
        "to the question or to the answer's supported sentence before it; 0 turns the test off.",
    )


class SlackSettings(Group):
    bot_token: SecretStr | None = Field(None, description="xoxb- token (SLACK_BOT_TOKEN).")
    app_token: SecretStr | None = Field(None, description="xapp- token for Socket Mode (SLACK_APP_TOKEN).")
    signing_secret: SecretStr | None = Field(None, description="HTTP mode secret (SLACK_SIGNING_SECRET).")
    api_url: str | None = Field(None, description="Web API base URL (SLACK_API_URL); default Slack's.")
    channels: list[str] = Field(default_factory=list, description="Allowed channel ids; empty means all.")
    channel_filters: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per channel id: {sources: [...], since: date, until: date}."
    )
    ask_visibility: Literal["channel", "ephemeral"] = Field("ephemeral", description="Who sees /ask answers.")
    user_rate_per_minute: int = Field(6, ge=1, description="Questions one user may ask per minute.")
    workers: int = Field(4, ge=1, description="Answers worked on at once.")
    queue: int = Field(
        32, ge=0, description="Questions that may wait for a free worker; beyond them, askers are told to try later."
    )
    drain_seconds: float = Field(
        60.0,
        gt=0,
        description="On SIGTERM, how long the questions taken may still take to be answered before the bot exits; "
        "those not started by then are asked to ask again.",
    )


def default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("byline", appauthor=False))


class Settings(BaseSettings):
    """Everything Byline can be told. `BYLINE_LLM_BASE_URL` sets `llm.base_url`, and so on."""

    model_config = SettingsConfigDict(
        env_prefix="BYLINE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
    )

    home: Path = Field(default_factory=default_home, description="Data directory for the index.")
    answerer: Literal["extractive", "llm"] = Field("extractive", description="Who writes answers.")
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    chunk: ChunkSettings = Field(default_factory=ChunkSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


# Conventional variable names that are not BYLINE_-prefixed, read only at the edge.
_FOREIGN_ENV = {
    ("slack", "bot_token"): "SLACK_BOT_TOKEN",
    ("slack", "app_token"): "SLACK_APP_TOKEN",
    ("slack", "signing_secret"): "SLACK_SIGNING_SECRET",
    ("slack", "api_url"): "SLACK_API_URL",
}
# The provider API-key variables, read only at the edge (here) and named in error messages.
LLM_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def load_settings(
    config_file: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings: `overrides` (CLI flags) > BYLINE_ env > TOML file > defaults.

    The TOML file is `config_file`, else `$BYLINE_CONFIG`, else `<home>/byline.toml` when it exists.
    """
    env = os.environ
    path = config_file or (Path(env["BYLINE_CONFIG"]) if env.get("BYLINE_CONFIG") else None)
    if path is None:
        home = overrides.get("home") or env.get("BYLINE_HOME") or default_home()
        candidate = Path(home) / "byline.toml"
        path = candidate if candidate.is_file() else None
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"config file not found: {path}")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in overrides.items() if v is not None}
    for (group, field), var in _FOREIGN_ENV.items():
        if env.get(var) and not env.get(f"BYLINE_{group.upper()}_{field.upper()}"):
            merged.setdefault(group, {}).setdefault(field, env[var])
    settings: Settings = _FromFile(**merged)  # type: ignore[arg-type]
    key_var = LLM_KEY_ENV.get(settings.llm.provider)
    if settings.llm.api_key is None and key_var and env.get(key_var):
        settings.llm.api_key = SecretStr(env[key_var])
    return settings
