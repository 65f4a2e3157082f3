"""Chat models through langchain (openai, anthropic, ollama), with bounded retries and one-line errors.

Provider packages are optional extras imported only here, when a model is built. Retries are ours, not the
provider client's, so every provider backs off the same way and a test can count the attempts.
"""

from __future__ import annotations

import contextvars
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from bot.settings import LLM_KEY_ENV, LLMSettings

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import BaseMessage

# Used when BYLINE_LLM_MODEL is unset; OpenAI-compatible servers (llama.cpp, vLLM) accept or ignore it.
DEFAULT_MODELS = {"openai": "gpt-4o-mini"}
# provider -> (module, class, pip extra)
_PROVIDERS = {
    "openai": ("langchain_openai", "ChatOpenAI", "openai"),
    "anthropic": ("langchain_anthropic", "ChatAnthropic", "anthropic"),
    "ollama": ("langchain_ollama", "ChatOllama", "ollama"),
}
# Local OpenAI-compatible servers want no key, but the OpenAI client refuses to start without one.
_NO_KEY = "not-needed"
_RETRY_STATUS = frozenset({408, 409, 425, 429})
_MAX_BACKOFF = 30.0
# Characters per token for text the model's own tokenizer cannot measure: English BPE runs near 4,
# so 3.5 over-counts a little and the prompt stays inside the window.
CHARS_PER_TOKEN = 3.5


class ConfigError(ValueError):
    """The settings cannot work (no key, no server, missing extra); the message is one line for the CLI."""


class LLMError(RuntimeError):
    """The model gave no usable reply; `str(self)` is a one-line reason fit for a notice."""


def model_name(settings: LLMSettings) -> str:
    """The configured model, or the provider's default; ConfigError when the provider has no default."""
    name = settings.model or DEFAULT_MODELS.get(settings.provider)
    if not name:
        raise ConfigError(f"BYLINE_LLM_MODEL is not set: provider {settings.provider} needs a model name")
    return name


def check_llm_settings(settings: LLMSettings, wanted_by: str = "BYLINE_ANSWERER=llm") -> None:
    """Refuse settings that cannot reach a model, before any question is asked; `wanted_by` opens the message."""
    model_name(settings)
    key_var = LLM_KEY_ENV.get(settings.provider)
    if settings.provider == "openai" and settings.api_key is None and not settings.base_url:
        raise ConfigError(
            f"{wanted_by} with provider openai needs OPENAI_API_KEY (or BYLINE_LLM_API_KEY), "
            "or BYLINE_LLM_BASE_URL for an OpenAI-compatible server"
        )
    if settings.provider == "anthropic" and settings.api_key is None:
        raise ConfigError(f"{wanted_by} with provider anthropic needs {key_var} (or BYLINE_LLM_API_KEY)")


def build_chat_model(settings: LLMSettings) -> BaseChatModel:
    """A langchain chat model for `settings`; ConfigError names a missing extra or setting."""
    check_llm_settings(settings)
    module_name, class_name, extra = _PROVIDERS[settings.provider]
    try:
        module = __import__(module_name, fromlist=[class_name])
    except ImportError as exc:
        raise ConfigError(
            f"provider {settings.provider} needs the {module_name.replace('_', '-')} package: "
            f"pip install 'byline[{extra}]'"
        ) from exc
    model_class = getattr(module, class_name)
    key = settings.api_key.get_secret_value() if settings.api_key else None
    common: dict[str, Any] = {"model": model_name(settings), "temperature": settings.temperature}
    if settings.provider == "openai":
        kwargs = {
            **common,
            "api_key": key or _NO_KEY,
            "base_url": settings.base_url,
            "max_tokens": settings.max_tokens,
            "timeout": settings.timeout,
            "max_retries": 0,
        }
    elif settings.provider == "anthropic":
        kwargs = {
            **common,
            "api_key": key,
            "base_url": settings.base_url,
            "max_tokens": settings.max_tokens,
            "timeout": settings.timeout,
            "max_retries": 0,
        }
    else:
        kwargs = {
            **common,
            "base_url": settings.base_url,
            "num_predict": settings.max_tokens,
            "client_kwargs": {"timeout": settings.timeout},
        }
    try:
        model: BaseChatModel = model_class(**{k: v for k, v in kwargs.items() if v is not None})
    except Exception as exc:  # pydantic validation of provider options: still a settings problem
        raise ConfigError(f"cannot set up the {settings.provider} chat model: {_first_line(exc)}") from exc
    return model


def token_counter(settings: LLMSettings) -> Callable[[str], int]:
    """Counts tokens with the model's tokenizer when one is available offline, else a safe estimate."""
    if settings.provider == "openai":
        encoding = _tiktoken_encoding(model_name(settings))
        if encoding is not None:
            return lambda text: len(encoding.encode(text, disallowed_special=()))
    return estimate_tokens


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@cache
def _tiktoken_encoding(model: str) -> Any:
    try:
        import tiktoken

        return tiktoken.encoding_for_model(model)
    except Exception:  # not installed, unknown model, or its BPE file cannot be fetched offline
        return None


def status_code(exc: BaseException) -> int | None:
    """The HTTP status behind a provider error, whichever client raised it."""
    for candidate in (exc, getattr(exc, "response", None)):
        code = getattr(candidate, "status_code", None)
        # Only failures count: some clients attach the (200) response to a parse error.
        if isinstance(code, int) and code >= 400:
            return code
    return None


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: timeouts, dropped connections, 408/409/425/429 and 5xx."""
    code = status_code(exc)
    if code is not None:
        return code in _RETRY_STATUS or code >= 500
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, ValueError):  # an unparseable body: a server that sent it once will send it again
        return False
    # Provider SDKs (openai, anthropic) and httpx name their network failures alike; matching names keeps
    # this free of imports from extras that may not be installed.
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"APIConnectionError", "APITimeoutError", "TimeoutException", "NetworkError"})


def describe_error(exc: BaseException) -> str:
    """One line for a notice: what went wrong, without the stack."""
    code = status_code(exc)
    if code == 429:
        return "rate limited (HTTP 429)"
    if code is not None:
        return f"HTTP {code}"
    if isinstance(exc, ValueError):
        return f"malformed reply ({_first_line(exc)})"
    if isinstance(exc, DeadlineExceeded):
        return str(exc)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, TimeoutError) or names & {"APITimeoutError", "TimeoutException"}:
        return "timed out"
    if isinstance(exc, ConnectionError) or names & {"APIConnectionError", "NetworkError"}:
        return "could not connect"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class DeadlineExceeded(TimeoutError):
    """The question's time for the model ran out; the message says how long that was."""


class ChatClient:
    """One configured chat model, called with bounded retries and exponential backoff, within a deadline.

    Each attempt runs in a worker thread that the caller waits on until the deadline, so a server that accepts
    the connection and never answers, or trickles its reply, costs no more than the time left: the HTTP client's
    own timeout bounds each read, not a whole reply. A worker given up on stops at its next piece, or when its
    read times out. Pieces reach the caller on the caller's thread.
    """

    def __init__(
        self,
        settings: LLMSettings,
        model: BaseChatModel | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.model = model if model is not None else build_chat_model(settings)
        self.count_tokens = token_counter(settings)
        self._sleep = sleep

    def deadline(self) -> float:
        """The `time.monotonic()` by which a question asked now must have its reply."""
        return time.monotonic() + self.settings.timeout

    def complete(self, messages: Sequence[BaseMessage], deadline: float | None = None) -> str:
        """The model's whole reply (one request, not streamed). LLMError when no reply came in time."""
        return "".join(self._attempts(messages, deadline, streaming=False))

    def stream(self, messages: Sequence[BaseMessage], deadline: float | None = None) -> Iterator[str]:
        """The model's reply in pieces as they arrive. LLMError when it fails or the deadline passes; once a
        piece has been given out there is no retry (a second reply would not continue the first)."""
        return self._attempts(messages, deadline, streaming=True)

    def _attempts(self, messages: Sequence[BaseMessage], deadline: float | None, streaming: bool) -> Iterator[str]:
        deadline = self.deadline() if deadline is None else deadline
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            given = False
            try:
                for piece in self._attempt(messages, deadline, streaming):
                    given = True
                    yield piece
                return
            except LLMError:
                raise
            except Exception as exc:
                delay = self._backoff(attempt, exc)
                out_of_time = time.monotonic() + delay >= deadline
                if given or not is_transient(exc) or attempt + 1 == attempts or out_of_time:
                    tried = f" after {attempt + 1} attempts" if attempt else ""
                    raise LLMError(f"{describe_error(exc)}{tried}") from exc
                self._sleep(delay)

    def _attempt(self, messages: Sequence[BaseMessage], deadline: float, streaming: bool) -> Iterator[str]:
        """One request in a worker thread; its pieces, waited for no later than `deadline`."""
        if time.monotonic() >= deadline:  # spent already (on condensing, say): no request at all
            raise self._too_late()
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()

        def work() -> None:
            try:
                if streaming:
                    for chunk in self.model.stream(list(messages)):
                        if stop.is_set():
                            return
                        pieces.put(("piece", _text(chunk.content)))
                else:
                    pieces.put(("piece", _text(self.model.invoke(list(messages)).content)))
            except BaseException as exc:  # handed to the caller's thread, which raises it there
                pieces.put(("error", exc))
            else:
                pieces.put(("end", None))

        # The copied context keeps LangChain's callbacks and tracing on the worker's calls.
        worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True)
        worker.start()
        try:
            while True:
                try:
                    kind, value = pieces.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise self._too_late() from None
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                if value:
                    yield value
        finally:
            stop.set()

    def _too_late(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"no complete reply within {self.settings.timeout:g} s")

    def _backoff(self, attempt: int, exc: BaseException) -> float:
        delay: float = self.settings.retry_backoff * 2**attempt
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        retry_after = str(headers.get("retry-after") or "")
        if retry_after.replace(".", "", 1).isdigit():  # seconds; an HTTP date falls back to our own schedule
            delay = max(delay, float(retry_after))
        return min(delay, _MAX_BACKOFF)


def _text(content: Any) -> str:
    """Message content as text: providers return a string or a list of typed blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block if isinstance(block, str) else str(block.get("text", ""))
            for block in content
            if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
        )
    raise LLMError(f"malformed reply: content of type {type(content).__name__}")
