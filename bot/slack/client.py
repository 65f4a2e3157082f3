"""The Slack Web API client Byline uses, with bounded retries, and the start-up credential check."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.settings import SlackSettings

log = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"
RATE_LIMIT_RETRIES = 2
# A worker sleeping out a longer Retry-After would hold up every question behind it; give up instead.
MAX_RETRY_AFTER = 30


NO_BOT_TOKEN = "SLACK_BOT_TOKEN is not set: copy the bot token (xoxb-…) from the app's OAuth & Permissions page."


class SlackStartupError(RuntimeError):
    """The bot cannot start: a missing token, or Slack rejected one. The message says which and why."""


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack-sdk's 429 handler (sleeps out `Retry-After`), but only for waits up to `max_wait` seconds."""

    def __init__(self, max_retry_count: int = RATE_LIMIT_RETRIES, max_wait: int = MAX_RETRY_AFTER) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"])
        try:
            seconds = int(wait[0] if isinstance(wait, list) else wait)
        except ValueError:
            seconds = 1
        if seconds > self.max_wait:
            log.warning("Slack asked to wait %ss before retrying %s; not retrying", seconds, request.url)
            return False
        return True


def retry_handlers() -> list[RetryHandler]:
    return [ConnectionErrorRetryHandler(), ServerErrorRetryHandler(), BoundedRateLimitRetryHandler()]


def api_url(settings: SlackSettings) -> str:
    # slack_sdk joins method names onto the base URL, so it must end in "/" or the last segment is lost.
    return (settings.api_url or SLACK_API_URL).rstrip("/") + "/"


def make_web_client(settings: SlackSettings) -> WebClient:
    """A WebClient for the bot token, pointed at `settings.api_url` (default Slack's), with bounded retries."""
    if settings.bot_token is None:
        raise SlackStartupError(NO_BOT_TOKEN)
    return WebClient(
        token=settings.bot_token.get_secret_value(),
        base_url=api_url(settings),
        retry_handlers=retry_handlers(),
        timeout=30,
    )


def check_startup(settings: SlackSettings, *, http: bool) -> None:
    """Every token the chosen mode needs is present (no network): raise SlackStartupError naming the first gap."""
    if settings.bot_token is None:
        raise SlackStartupError(NO_BOT_TOKEN)
    if http and settings.signing_secret is None:
        raise SlackStartupError(
            "HTTP mode needs SLACK_SIGNING_SECRET (the app's Basic Information page) to verify requests."
        )
    if not http and settings.app_token is None:
        raise SlackStartupError(
            "Socket Mode needs SLACK_APP_TOKEN (an xapp-… app-level token with "
            "connections:write); or run `byline slack --http --port N` for HTTP mode."
        )


def verify_bot_token(client: WebClient) -> dict[str, Any]:
    """Call auth.test once; a rejected token or an unreachable API becomes a SlackStartupError."""
    try:
        result = client.auth_test()
    except SlackApiError as e:
        error = e.response.get("error", "unknown_error")
        raise SlackStartupError(
            f"Slack rejected the bot token at auth.test ({error}); check SLACK_BOT_TOKEN "
            "and that the app is installed in the workspace."
        ) from None
    except OSError as e:
        raise SlackStartupError(f"could not reach the Slack Web API at {client.base_url}: {e}") from None
    return dict(result.data) if isinstance(result.data, dict) else {}


def error_code(error: Exception) -> str:
    """Slack's error code for a failed Web API call; `connection_failed` when Slack was not reached and
    `request_refused` when the SDK refused the call itself (e.g. appending to a stream it has finished)."""
    if isinstance(error, SlackApiError):
        return str(error.response.get("error", "unknown"))
    if isinstance(error, OSError):
        return "connection_failed"
    return "request_refused"


def describe_error(error: Exception) -> str:
    """The parts of a Web API failure worth logging (never the token): error code, status, needed scopes."""
    if not isinstance(error, SlackApiError):
        return f"error={error_code(error)} ({error})"
    response = error.response
    parts = [f"error={error_code(error)}", f"status={response.status_code}"]
    for key in ("needed", "provided", "warning"):
        if response.get(key):
            parts.append(f"{key}={response.get(key)}")
    return " ".join(parts)
