"""A fake Slack Web API (and Socket Mode WebSocket) on 127.0.0.1, for testing with the real slack_sdk clients.

`FakeSlack` answers the Web API methods the bot uses the way Slack does (HTTP 200 with `{"ok": false, "error"}`
for API errors, 429 with `Retry-After` for rate limits), keeps the messages it was sent so `conversations.replies`
can return a thread, enforces the Block Kit limits, records every call, and can be scripted to fail.
`/webhook/...` stands in for a slash command's or a button click's `response_url`.

The AI-app methods (`assistant.threads.setStatus/setSuggestedPrompts/setTitle`, `chat.startStream/appendStream/
stopStream`) take exactly the request shapes slack_sdk 3.48's WebClient methods and `chat_stream()` send, JSON or
form as the SDK chooses, with their field names and required fields, and keep their state: a thread's status
(cleared when the bot replies in it), its title and suggested prompts, and each stream, which takes no appends
once stopped. Slack itself accepts either encoding; the fake holds the bot to the SDK's, so a hand-built call
that would put a list into a form field is caught here rather than in a workspace.

`FakeSocketMode` is the WebSocket end of Socket Mode: it says hello, pushes envelopes and records the acks.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from loopback import LoopbackServer

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-test-token"
TEAM_ID = "T0TEAM"
BOT_USER_ID = "U0BYLINE"
BOT_ID = "B0BYLINE"

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTION_ELEMENTS = 25
MAX_CONTEXT_ACTION_ELEMENTS = 5
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ID = 255
MAX_MESSAGE_TEXT = 40_000
# One markdown block, and all markdown blocks of one message together (Block Kit reference, markdown block).
MAX_MARKDOWN_TEXT = 12_000
# `markdown_text` of chat.postMessage/update/*Stream, and one markdown_text chunk.
MAX_MARKDOWN_FIELD = 12_000
MAX_SUGGESTED_PROMPTS = 4
MAX_LOADING_MESSAGES = 10
# Slack ends a stream about five minutes after it started; later appends get message_not_in_streaming_state.
STREAM_LIFETIME = 300.0
KNOWN_BLOCKS = {
    "section",
    "context",
    "divider",
    "actions",
    "header",
    "rich_text",
    "markdown",
    "image",
    "context_actions",
}
TASK_STATUSES = {"pending", "in_progress", "complete", "error"}
TASK_DISPLAY_MODES = {"timeline", "plan", "dense"}

JSON = "json"
FORM = "form"
# How slack_sdk 3.48 sends each method (WebClient: `json=` or `params=`), its fields, and which are required.
REQUEST_SHAPES: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {
    "assistant.threads.setStatus": (
        JSON,
        frozenset({"channel_id", "thread_ts", "status", "loading_messages", "icon_emoji", "icon_url", "username"}),
        frozenset({"channel_id", "thread_ts", "status"}),
    ),
    "assistant.threads.setSuggestedPrompts": (
        JSON,
        frozenset({"channel_id", "thread_ts", "title", "prompts"}),
        frozenset({"channel_id", "prompts"}),
    ),
    "assistant.threads.setTitle": (
        FORM,
        frozenset({"channel_id", "thread_ts", "title"}),
        frozenset({"channel_id", "thread_ts", "title"}),
    ),
    "chat.startStream": (
        JSON,
        frozenset(
            {
                "channel",
                "thread_ts",
                "markdown_text",
                "chunks",
                "recipient_team_id",
                "recipient_user_id",
                "task_display_mode",
                "icon_emoji",
                "icon_url",
                "username",
            }
        ),
        frozenset({"channel", "thread_ts"}),
    ),
    "chat.appendStream": (
        JSON,
        frozenset({"channel", "ts", "markdown_text", "chunks"}),
        frozenset({"channel", "ts"}),
    ),
    "chat.stopStream": (
        JSON,
        frozenset({"channel", "ts", "markdown_text", "chunks", "blocks", "metadata", "session_status"}),
        frozenset({"channel", "ts"}),
    ),
}
# Methods whose text someone in Slack gets to see.
SHOWING_METHODS = (
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "chat.startStream",
    "chat.appendStream",
    "chat.stopStream",
    "webhook",
)


@dataclass
class Call:
    """One request the fake received: the API method (or `webhook`), its arguments and bearer token."""

    method: str
    args: dict[str, Any]
    token: str | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def encoding(self) -> str:
        return JSON if self.headers.get("content-type", "").startswith("application/json") else FORM


@dataclass
class Failure:
    """A scripted failure for the next calls to `method`: an HTTP status, or `ok: false` with `error`."""

    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    """Slack's error code for a request, and (as Slack does in `response_metadata`) what was wrong with it."""

    error: str
    detail: str = ""

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.detail:
            body["response_metadata"] = {"messages": [f"[ERROR] {self.detail}"]}
        return body


@dataclass
class Stream:
    """A message being streamed with chat.startStream/appendStream/stopStream."""

    channel: str
    ts: str
    thread_ts: str
    recipient_team_id: str | None
    recipient_user_id: str | None
    started_at: float
    state: Literal["streaming", "stopped", "ended"] = "streaming"
    # Why appends stop working when `state` is "ended": Slack's error for them.
    ended_with: str = "message_not_in_streaming_state"
    chunks: list[dict[str, Any]] = field(default_factory=list)
    blocks: list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        """The markdown streamed so far, as the reader sees it."""
        return "".join(c["text"] for c in self.chunks if c["type"] == "markdown_text")


@dataclass
class AssistantThread:
    """What the assistant.threads methods set on one thread: status history, title and suggested prompts."""

    statuses: list[str] = field(default_factory=list)
    loading_messages: list[list[str]] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    # How many times a status was removed because the bot posted in the thread (not by setting "").
    cleared_by_reply: int = 0

    @property
    def status(self) -> str:
        return self.statuses[-1] if self.statuses else ""


def _plain_text_problem(text: Any, where: str, limit: int) -> str | None:
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        return f"{where} must be a plain_text object"
    body = text.get("text")
    if not isinstance(body, str) or not body or len(body) > limit:
        return f"{where}.text must be 1-{limit} characters"
    return None


def _feedback_buttons_problem(element: dict[str, Any], where: str) -> str | None:
    for side in ("positive_button", "negative_button"):
        button = element.get(side)
        if not isinstance(button, dict):
            return f"{where}.{side} is required"
        if problem := _plain_text_problem(button.get("text"), f"{where}.{side}.text", MAX_BUTTON_TEXT):
            return problem
        value = button.get("value")
        if not isinstance(value, str) or not value or len(value) > MAX_BUTTON_VALUE:
            return f"{where}.{side}.value must be 1-{MAX_BUTTON_VALUE} characters"
        if len(button.get("accessibility_label", "")) > MAX_BUTTON_TEXT:
            return f"{where}.{side}.accessibility_label is over {MAX_BUTTON_TEXT} characters"
    return None


def _context_actions_problem(block: dict[str, Any], where: str) -> str | None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ACTION_ELEMENTS:
        return f"{where}.elements must hold 1-{MAX_CONTEXT_ACTION_ELEMENTS} elements"
    for i, element in enumerate(elements):
        at = f"{where}.elements[{i}]"
        kind = element.get("type") if isinstance(element, dict) else None
        if kind == "feedback_buttons":
            problem = _feedback_buttons_problem(element, at)
        elif kind == "icon_button":
            problem = None if isinstance(element.get("icon"), str) and element["icon"] else f"{at}.icon is required"
            problem = problem or _plain_text_problem(element.get("text"), f"{at}.text", MAX_BUTTON_TEXT)
            if len(element.get("value", "")) > MAX_BUTTON_VALUE:
                problem = f"{at}.value is over {MAX_BUTTON_VALUE} characters"
        else:
            problem = f"{at}: only feedback_buttons and icon_button go in context_actions"
        if problem:
            return problem
    return None


def _actions_problem(block: dict[str, Any], where: str) -> str | None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTION_ELEMENTS:
        return f"{where}.elements must hold 1-{MAX_ACTION_ELEMENTS} elements"
    for i, button in enumerate(elements):
        at = f"{where}.elements[{i}]"
        if not isinstance(button, dict) or button.get("type") != "button":
            return f"{at}: only buttons are checked by this fake"
        if problem := _plain_text_problem(button.get("text"), f"{at}.text", MAX_BUTTON_TEXT):
            return problem
        if len(button.get("value", "")) > MAX_BUTTON_VALUE:
            return f"{at}.value is over {MAX_BUTTON_VALUE} characters"
        if not button.get("action_id"):
            return f"{at}.action_id is required"
    return None


def _action_ids_problem(block: dict[str, Any], where: str) -> str | None:
    ids = [e.get("action_id") for e in block.get("elements") or [] if isinstance(e, dict) and e.get("action_id")]
    if any(not isinstance(i, str) or len(i) > MAX_ID for i in ids):
        return f"{where}: an action_id is over {MAX_ID} characters"
    if len(ids) != len(set(ids)):
        return f"{where}: action_ids must be unique within a block"
    return None


def blocks_problem(blocks: Any, max_total_chars: int | None, *, too_many: str = "invalid_blocks") -> Rejection | None:
    """Why Slack would reject these blocks, or None.

    `invalid_blocks` for a malformed block; `too_many` (chat.postMessage says invalid_blocks, chat.stopStream
    msg_blocks_too_many) past 50 blocks; `msg_blocks_too_long` when all markdown blocks together pass 12,000
    characters or all the text passes `max_total_chars`."""
    if not isinstance(blocks, list):
        return Rejection("invalid_blocks_format", "blocks must be an array")
    if len(blocks) > MAX_BLOCKS:
        return Rejection(too_many, f"{len(blocks)} blocks; at most {MAX_BLOCKS}")
    total = markdown_total = 0
    for n, block in enumerate(blocks):
        where = f"blocks[{n}]"
        if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCKS:
            return Rejection("invalid_blocks", f"{where}: unknown block type")
        if len(block.get("block_id", "")) > MAX_ID:
            return Rejection("invalid_blocks", f"{where}.block_id is over {MAX_ID} characters")
        kind = block["type"]
        texts: list[Any] = []
        problem: str | None = None
        if kind == "section":
            texts.append(block.get("text"))
        elif kind == "context":
            elements = block.get("elements") or []
            if not elements or len(elements) > MAX_CONTEXT_ELEMENTS:
                problem = f"{where}.elements must hold 1-{MAX_CONTEXT_ELEMENTS} elements"
            texts += elements
        elif kind == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or not text or len(text) > MAX_MARKDOWN_TEXT:
                problem = f"{where}.text must be 1-{MAX_MARKDOWN_TEXT} characters"
            else:
                markdown_total += len(text)
                total += len(text)
        elif kind == "actions":
            problem = _actions_problem(block, where) or _action_ids_problem(block, where)
        elif kind == "context_actions":
            problem = _context_actions_problem(block, where) or _action_ids_problem(block, where)
        if problem:
            return Rejection("invalid_blocks", problem)
        for text in texts:
            if not isinstance(text, dict) or text.get("type") not in ("mrkdwn", "plain_text"):
                return Rejection("invalid_blocks", f"{where}: a text object must be mrkdwn or plain_text")
            body = text.get("text")
            if not isinstance(body, str) or not body or len(body) > MAX_SECTION_TEXT:
                return Rejection("invalid_blocks", f"{where}: text must be 1-{MAX_SECTION_TEXT} characters")
            total += len(body)
    if markdown_total > MAX_MARKDOWN_TEXT:
        return Rejection("msg_blocks_too_long", f"markdown blocks hold {markdown_total} characters together")
    if max_total_chars is not None and total > max_total_chars:
        return Rejection("msg_blocks_too_long", f"blocks hold {total} characters")
    return None


def block_kit_error(blocks: Any, max_total_chars: int | None) -> str | None:
    """Why Slack would reject these blocks (`invalid_blocks`, `msg_blocks_too_long`), or None."""
    problem = blocks_problem(blocks, max_total_chars)
    return problem.error if problem else None


def chunks_problem(chunks: Any, max_total_chars: int | None) -> Rejection | None:
    """Why Slack would reject a `chunks` array of chat.*Stream, or None."""
    if not isinstance(chunks, list):
        return Rejection("invalid_chunks", "chunks must be an array")
    for n, chunk in enumerate(chunks):
        where = f"chunks[{n}]"
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        if kind == "markdown_text":
            text = chunk.get("text")
            if not isinstance(text, str):
                return Rejection("invalid_chunks", f"{where}.text is required")
            if len(text) > MAX_MARKDOWN_FIELD:
                return Rejection("msg_too_long", f"{where}.text is over {MAX_MARKDOWN_FIELD} characters")
        elif kind == "task_update":
            if not (chunk.get("id") and chunk.get("title")) or chunk.get("status") not in TASK_STATUSES:
                return Rejection("invalid_chunks", f"{where}: a task_update needs id, title and a known status")
        elif kind == "plan_update":
            if not chunk.get("title"):
                return Rejection("invalid_chunks", f"{where}.title is required")
        elif kind == "blocks":
            if problem := blocks_problem(chunk.get("blocks"), max_total_chars, too_many="msg_blocks_too_many"):
                return problem
        else:
            return Rejection("invalid_chunks", f"{where}: unknown chunk type {kind!r}")
    return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class FakeSlack:
    """Start with `with FakeSlack() as slack:`; point `WebClient(base_url=slack.api_url)` at it.

    `experience` is the app's messaging experience: "assistant" (manifest `assistant_view`) or "agent"
    (`agent_view`), where setSuggestedPrompts with a thread_ts is accepted and silently ignored, as Slack does."""

    def __init__(
        self,
        *,
        max_total_chars: int | None = 13_000,
        experience: Literal["assistant", "agent"] = "assistant",
        stream_lifetime: float = STREAM_LIFETIME,
    ) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.failures: dict[str, list[Failure | None]] = {}
        self.streams: dict[tuple[str, str], Stream] = {}
        self.threads: dict[tuple[str, str | None], AssistantThread] = {}
        self.ignored: list[Call] = []
        self.max_total_chars = max_total_chars
        self.experience = experience
        self.stream_lifetime = stream_lifetime
        self.bot_token = BOT_TOKEN
        self.wss_url: str | None = None
        self._ts = 1_700_000_000.0
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return self._server.base_url

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def webhook_url(self, name: str = "response") -> str:
        return f"{self.url}/webhook/{name}"

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- scripting and inspection ----------------------------------------------------------------------

    def fail_next(self, method: str, failure: Failure, times: int = 1, *, after: int = 0) -> None:
        """Answer the next `times` calls to `method` with `failure`, once `after` more calls have gone through."""
        with self._lock:
            self.failures.setdefault(method, []).extend([None] * after + [failure] * times)

    def add_message(
        self, channel: str, text: str, *, user: str = "U0ALICE", thread_ts: str | None = None, **fields: Any
    ) -> str:
        """Put a message in a conversation, as if someone had posted it; returns its ts."""
        with self._lock:
            return self._store(channel, {"text": text, "user": user, "thread_ts": thread_ts, **fields})

    def end_stream(self, channel: str, ts: str, error: str = "message_not_in_streaming_state") -> None:
        """End a stream as Slack does when it times out (or, with "stopped_by_user", when the reader stops it)."""
        with self._lock:
            stream = self.streams[(channel, ts)]
            stream.state, stream.ended_with = "ended", error

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str | None) -> AssistantThread:
        """What the assistant.threads methods set on a thread (`thread_ts` None: the agent DM itself)."""
        with self._lock:
            return self.threads.setdefault((channel, thread_ts), AssistantThread())

    def shown(self, channel: str | None = None) -> str:
        """Every piece of text the bot ever put before someone (messages, edits, streams, response_url posts),
        including what was later replaced: to show that something never reached Slack."""
        with self._lock:
            calls = [c for c in self.calls if c.method in SHOWING_METHODS]
        texts: list[str] = []
        for call in calls:
            if channel is None or call.args.get("channel") == channel:
                texts += _strings({k: v for k, v in call.args.items() if k not in ("channel", "ts", "thread_ts")})
        return "\n".join(texts)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Poll until `predicate()` is truthy (the bot works in background threads); returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := predicate():
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting; calls so far: {[c.method for c in self.calls]}")

    def wait_calls(self, method: str, count: int = 1, timeout: float = 30.0) -> list[Call]:
        found: list[Call] = self.wait_for(
            lambda: len(self.calls_to(method)) >= count and self.calls_to(method), timeout
        )
        return found

    # -- the conversation store --------------------------------------------------------------------------

    def _store(self, channel: str, message: dict[str, Any]) -> str:
        self._ts += 1
        ts = f"{self._ts:.6f}"
        message = {k: v for k, v in message.items() if v is not None}
        if isinstance(message.get("blocks"), list):
            message["blocks"] = _as_stored(message["blocks"])
        self.messages.setdefault(channel, []).append({"type": "message", "ts": ts, **message})
        return ts

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    def _thread_root(self, channel: str, thread_ts: Any) -> Rejection | None:
        """None when `thread_ts` names a message that can start a thread in `channel` (not a reply)."""
        message = self._find(channel, str(thread_ts))
        if message is None:
            return Rejection("invalid_thread_ts", f"no message {thread_ts} in {channel}")
        if message.get("thread_ts", message["ts"]) != message["ts"]:
            return Rejection("invalid_thread_ts", f"{thread_ts} is a reply; use its thread's ts")
        return None

    def _bot_replied(self, channel: str, thread_ts: str | None) -> None:
        # Slack removes a thread's status when the app sends a message in it.
        thread = self.threads.get((channel, thread_ts))
        if thread_ts and thread and thread.status:
            thread.statuses.append("")
            thread.cleared_by_reply += 1

    # -- the API ---------------------------------------------------------------------------------------

    def _check_message(self, args: dict[str, Any]) -> Rejection | None:
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
            args["blocks"] = blocks
        if blocks is not None and (problem := blocks_problem(blocks, self.max_total_chars)):
            return problem
        if len(args.get("text") or "") > MAX_MESSAGE_TEXT:
            return Rejection("msg_too_long")
        markdown = args.get("markdown_text")
        if markdown is not None:
            if args.get("text") or blocks:
                return Rejection("markdown_text_conflict", "markdown_text goes without text and blocks")
            if len(markdown) > MAX_MARKDOWN_FIELD:
                return Rejection("msg_too_long", f"markdown_text is over {MAX_MARKDOWN_FIELD} characters")
        if not args.get("text") and not blocks and not markdown:
            return Rejection("no_text")
        return None

    def _check_shape(self, method: str, args: dict[str, Any], encoding: str) -> Rejection | None:
        sent_as, known, required = REQUEST_SHAPES[method]
        if encoding != sent_as:
            return Rejection("invalid_arguments", f"slack_sdk sends {method} as {sent_as}, not {encoding}")
        if unknown := sorted(set(args) - known):
            return Rejection("invalid_arguments", f"unknown field(s) {unknown} for {method}")
        # An empty status is allowed: it clears the thread's status.
        if missing := sorted(f for f in required if f not in args or (args[f] == "" and f != "status")):
            return Rejection("invalid_arguments", f"missing required field(s) {missing}")
        return None

    def _answer(
        self, method: str, args: dict[str, Any], token: str | None, encoding: str
    ) -> tuple[int, dict[str, Any]]:
        if method == "apps.connections.open":
            if not (token or "").startswith("xapp-"):
                return 200, {"ok": False, "error": "not_allowed_token_type"}
            return 200, {"ok": True, "url": self.wss_url}
        if token != self.bot_token:
            return 200, {"ok": False, "error": "invalid_auth"}
        if method in REQUEST_SHAPES:
            if problem := self._check_shape(method, args, encoding):
                return 200, problem.body()
            answer = getattr(self, "_" + method.replace(".", "_"))(args)
            return 200, answer.body() if isinstance(answer, Rejection) else {"ok": True, **answer}
        if method == "auth.test":
            return 200, {
                "ok": True,
                "url": "https://fake.slack.com/",
                "team": "Fake",
                "user": "byline",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
            }
        channel = str(args.get("channel", ""))
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral") and (
            problem := self._check_message(args)
        ):
            return 200, problem.body()
        if method == "chat.postMessage":
            fields = {k: args.get(k) for k in ("text", "blocks", "thread_ts", "metadata", "markdown_text")}
            ts = self._store(channel, {**fields, "user": BOT_USER_ID, "bot_id": BOT_ID})
            self._bot_replied(channel, args.get("thread_ts"))
            return 200, {"ok": True, "channel": channel, "ts": ts, "message": self._find(channel, ts)}
        if method == "chat.update":
            ts = str(args.get("ts"))
            message = self._find(channel, ts)
            if message is None:
                return 200, {"ok": False, "error": "message_not_found"}
            stream = self.streams.get((channel, ts))
            if stream is not None and self._streaming(stream):
                return 200, Rejection("streaming_state_conflict", "the message is still streaming").body()
            message["text"] = args.get("text")
            for key in ("blocks", "markdown_text"):
                message.pop(key, None)
                if args.get(key) is not None:
                    message[key] = _as_stored(args[key]) if key == "blocks" else args[key]
            if args.get("metadata") is not None:
                message["metadata"] = args["metadata"]
            return 200, {"ok": True, "channel": channel, "ts": message["ts"], "text": message["text"]}
        if method == "chat.postEphemeral":
            self._ts += 1
            return 200, {"ok": True, "message_ts": f"{self._ts:.6f}"}
        if method == "conversations.replies":
            root = str(args.get("ts"))
            thread = [m for m in self.messages.get(channel, []) if root in (m["ts"], m.get("thread_ts"))]
            if not thread:
                return 200, {"ok": False, "error": "thread_not_found"}
            if str(args.get("include_all_metadata", "")).lower() not in ("1", "true"):
                thread = [{k: v for k, v in m.items() if k != "metadata"} for m in thread]
            return 200, {"ok": True, "messages": thread, "has_more": False}
        if method == "reactions.add":
            return 200, {"ok": True}
        return 200, {"ok": False, "error": "unknown_method"}

    # -- assistant.threads.* ---------------------------------------------------------------------------

    def _assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any] | Rejection:
        channel, thread_ts = str(args["channel_id"]), str(args["thread_ts"])
        if not isinstance(args["status"], str):
            return Rejection("invalid_arguments", "status must be a string")
        loading = args.get("loading_messages")
        if loading is not None and (
            not isinstance(loading, list)
            or len(loading) > MAX_LOADING_MESSAGES
            or not all(isinstance(m, str) and m for m in loading)
        ):
            return Rejection("invalid_arguments", f"loading_messages: at most {MAX_LOADING_MESSAGES} strings")
        if problem := self._thread_root(channel, thread_ts):
            return problem
        thread = self.threads.setdefault((channel, thread_ts), AssistantThread())
        thread.statuses.append(args["status"])
        thread.loading_messages.append(loading or [])
        return {}

    def _assistant_threads_setTitle(self, args: dict[str, Any]) -> dict[str, Any] | Rejection:
        channel, thread_ts = str(args["channel_id"]), str(args["thread_ts"])
        if problem := self._thread_root(channel, thread_ts):
            return problem
        self.threads.setdefault((channel, thread_ts), AssistantThread()).titles.append(str(args["title"]))
        return {}

    def _assistant_threads_setSuggestedPrompts(self, args: dict[str, Any]) -> dict[str, Any] | Rejection:
        channel, thread_ts = str(args["channel_id"]), args.get("thread_ts")
        prompts = args["prompts"]
        if not _prompts_well_formed(prompts):
            return Rejection("invalid_arguments", f"prompts: 1-{MAX_SUGGESTED_PROMPTS} {{title, message}} objects")
        if thread_ts is not None and self.experience == "agent":
            # "Including it in a call for an agent app will cause the call to silently fail."
            self.ignored.append(Call("assistant.threads.setSuggestedPrompts", args, self.bot_token))
            return {}
        if thread_ts is not None and (problem := self._thread_root(channel, thread_ts)):
            return problem
        thread = self.threads.setdefault((channel, thread_ts), AssistantThread())
        thread.prompts.append({"title": args.get("title"), "prompts": prompts})
        return {}

    # -- chat.*Stream ----------------------------------------------------------------------------------

    def _streaming(self, stream: Stream) -> bool:
        if stream.state == "streaming" and time.monotonic() - stream.started_at > self.stream_lifetime:
            stream.state = "ended"
        return stream.state == "streaming"

    def _stream_content(self, args: dict[str, Any]) -> list[dict[str, Any]] | Rejection:
        """`markdown_text` and `chunks` as one list of chunks, or why Slack would refuse them."""
        content: list[dict[str, Any]] = []
        markdown = args.get("markdown_text")
        if markdown is not None:
            if not isinstance(markdown, str):
                return Rejection("invalid_arguments", "markdown_text must be a string")
            if len(markdown) > MAX_MARKDOWN_FIELD:
                return Rejection("msg_too_long", f"markdown_text is over {MAX_MARKDOWN_FIELD} characters")
            content.append({"type": "markdown_text", "text": markdown})
        chunks = args.get("chunks")
        if chunks is not None:
            if problem := chunks_problem(chunks, self.max_total_chars):
                return problem
            content += chunks
        return content

    def _open_stream(self, args: dict[str, Any]) -> Stream | Rejection:
        channel, ts = str(args["channel"]), str(args["ts"])
        stream = self.streams.get((channel, ts))
        if stream is None:
            return Rejection("message_not_found", f"no streamed message {ts} in {channel}")
        if not self._streaming(stream):
            return Rejection(stream.ended_with if stream.state == "ended" else "message_not_in_streaming_state")
        return stream

    def _chat_startStream(self, args: dict[str, Any]) -> dict[str, Any] | Rejection:
        channel, thread_ts = str(args["channel"]), str(args["thread_ts"])
        if not channel.startswith("D"):
            # "Required when streaming to channels."
            for recipient in ("recipient_team_id", "recipient_user_id"):
                if not args.get(recipient):
                    return Rejection(f"missing_{recipient}")
        mode = args.get("task_display_mode")
        if mode is not None and mode not in TASK_DISPLAY_MODES:
            return Rejection("invalid_arguments", f"task_display_mode must be one of {sorted(TASK_DISPLAY_MODES)}")
        content = self._stream_content(args)
        if isinstance(content, Rejection):
            return content
        # Slack's documented errors have no code for this; the fake borrows setStatus's.
        if problem := self._thread_root(channel, thread_ts):
            return problem
        text = "".join(c["text"] for c in content if c["type"] == "markdown_text")
        ts = self._store(channel, {"text": text, "thread_ts": thread_ts, "user": BOT_USER_ID, "bot_id": BOT_ID})
        self.streams[(channel, ts)] = Stream(
            channel,
            ts,
            thread_ts,
            args.get("recipient_team_id"),
            args.get("recipient_user_id"),
            time.monotonic(),
            chunks=content,
        )
        self._bot_replied(channel, thread_ts)
        return {"channel": channel, "ts": ts}

    def _chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any] | Rejection:
        stream = self._open_stream(args)
        if isinstance(stream, Rejection):
            return stream
        content = self._stream_content(args)
        if isinstance(content, Rejection):
            return content
        if not content:
            return Rejection("no_text", "an append needs markdown_text or chunks")
        stream.chunks += content
        self._update_streamed(stream)
        return {"channel": stream.channel, "ts": stream.ts}

    def _chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any] | Rejection:
        stream = self._open_stream(args)
        if isinstance(stream, Rejection):
            return stream
        content = self._stream_content(args)
        if isinstance(content, Rejection):
            return content
        blocks = args.get("blocks")
        if blocks is not None and (
            problem := blocks_problem(blocks, self.max_total_chars, too_many="msg_blocks_too_many")
        ):
            return problem
        metadata = args.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and metadata.get("event_type")
            and isinstance(metadata.get("event_payload"), dict)
        ):
            return Rejection("invalid_metadata_format", "metadata needs event_type and an event_payload object")
        stream.chunks += content
        stream.blocks = blocks
        stream.state = "stopped"
        message = self._update_streamed(stream)
        if blocks is not None:
            message["blocks"] = _as_stored(blocks)
        if metadata is not None:
            message["metadata"] = metadata
        return {"channel": stream.channel, "ts": stream.ts, "message": message}

    def _update_streamed(self, stream: Stream) -> dict[str, Any]:
        message = self._find(stream.channel, stream.ts)
        assert message is not None
        message["text"] = stream.text
        return message

    # -- HTTP ------------------------------------------------------------------------------------------

    def _handle(self, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path)
        args: dict[str, Any] = dict(parse_qsl(parts.query))
        encoding = JSON if headers.get("content-type", "").startswith("application/json") else FORM
        if raw:
            if encoding == JSON:
                args.update(json.loads(raw))
            else:
                args.update(parse_qsl(raw.decode()))
        auth = headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        if parts.path.startswith("/webhook/"):
            method = "webhook"
        elif parts.path.startswith("/api/"):
            method = parts.path.removeprefix("/api/")
        else:
            return 404, {}, b"not found"
        with self._lock:
            self.calls.append(Call(method, args, token, headers))
            scripted = self.failures.get(method)
            failure = scripted.pop(0) if scripted else None
            if failure is not None:
                extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
                body = {"ok": False, "error": failure.error or "ratelimited", **failure.extra}
                return failure.status, extra, json.dumps(body).encode()
            if method == "webhook":
                return 200, {}, b"ok"
            status, body = self._answer(method, args, token, encoding)
        return status, {}, json.dumps(body).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, body = fake._handle(self.path, raw, headers)
                self.send_response(status)
                content_type = "text/plain" if body == b"ok" else "application/json; charset=utf-8"
                self.send_header("Content-Type", content_type)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _serve
            do_POST = _serve

        return Handler


def _prompts_well_formed(prompts: Any) -> bool:
    return (
        isinstance(prompts, list)
        and 1 <= len(prompts) <= MAX_SUGGESTED_PROMPTS
        and all(
            isinstance(p, dict) and set(p) == {"title", "message"} and all(isinstance(v, str) and v for v in p.values())
            for p in prompts
        )
    )


def _as_stored(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks as Slack keeps them: a markdown block's block_id is "ignored and will not be retained"."""
    return [{k: v for k, v in b.items() if not (b.get("type") == "markdown" and k == "block_id")} for b in blocks]


class FakeSocketMode:
    """The WebSocket end of Socket Mode (aiohttp, its own loop in a thread).

    Set `FakeSlack.wss_url = fake.url` so `apps.connections.open` hands it out; `send(envelope)` pushes an
    envelope to the connected client and `acks` collects the `envelope_id`s the client acknowledged.
    """

    def __init__(self) -> None:
        self.acks: list[dict[str, Any]] = []
        self.connections = 0
        self._sockets: list[Any] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def send(self, envelope: dict[str, Any]) -> None:
        async def push() -> None:
            for ws in list(self._sockets):
                await ws.send_str(json.dumps(envelope))

        asyncio.run_coroutine_threadsafe(push(), self._loop).result(30)

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        await self._runner.cleanup()

    async def _link(self, request: Any) -> Any:
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {}}))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.acks.append(json.loads(message.data))
        self._sockets.remove(ws)
        return ws
