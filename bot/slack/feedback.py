"""The answers Byline showed in Slack and the votes on them, kept in the catalog; the answers read back as a
thread's earlier turns, and the ones voted down exported as eval questions.

This module owns the `slack_answers` and `feedback` tables: it declares their migrations and alone reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bot.models import Answer, Turn
from ingest.clock import now_iso
from ingest.storage.catalog import Catalog, Migration

_ANSWERS_FEEDBACK = """
        -- answers the Slack bot showed (the id is the one its 👍/👎 buttons carry) and the votes on them
        CREATE TABLE slack_answers (
            id TEXT PRIMARY KEY,
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            refused INTEGER NOT NULL,
            citations TEXT NOT NULL,
            channel TEXT,
            ts TEXT,
            thread_ts TEXT,
            user_id TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE feedback (
            answer_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
            channel TEXT,
            message_ts TEXT,
            voted_at TEXT NOT NULL,
            PRIMARY KEY (answer_id, user_id)
        );
        CREATE INDEX feedback_vote ON feedback(vote, voted_at);
        """
_ANSWERS_BY_THREAD = """
        -- a thread's earlier answers, for follow-up questions
        CREATE INDEX slack_answers_thread ON slack_answers(channel, thread_ts);
        """

# What a recorded answer says once an article it cited has been forgotten.
WITHDRAWN = "(withdrawn: an article this answer cited was removed with `byline forget`)"

MIGRATIONS = [
    Migration.portable("002_slack_feedback", _ANSWERS_FEEDBACK),
    Migration.portable("007_slack_answers_by_thread", _ANSWERS_BY_THREAD),
]


@dataclass(frozen=True, slots=True)
class PostedAnswer:
    """Where an answer was shown: the conversation, the message ts (None for a response_url) and who asked."""

    answer_id: str
    channel: str
    ts: str | None
    thread_ts: str | None
    user: str


class FeedbackStore:
    """Answers as posted and the votes on them; safe to share between threads and processes."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.apply_migrations(MIGRATIONS)

    def record_answer(self, answer: Answer, posted: PostedAnswer) -> None:
        citations = json.dumps([c.to_dict() for c in answer.citations], ensure_ascii=False)
        with self.catalog.transaction() as db:
            db.execute(
                """INSERT INTO slack_answers (id, question, answer, refused, citations, channel, ts, thread_ts,
                       user_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET ts = excluded.ts""",
                (
                    posted.answer_id,
                    answer.question,
                    answer.text,
                    int(answer.refused),
                    citations,
                    posted.channel,
                    posted.ts,
                    posted.thread_ts,
                    posted.user,
                    now_iso(),
                ),
            )

    def withdraw_citing(self, article_ids: Sequence[str]) -> int:
        """Replace each recorded answer that cited one of `article_ids` (forgotten articles) with a notice, and drop
        its citations: it quoted or paraphrased them, and forgotten text stays in no file of the home. The
        question and the votes stay. Returns how many answers were withdrawn."""
        forgotten = set(article_ids)
        citing: set[str] = set()
        for article_id in sorted(forgotten):
            rows = self.catalog.fetch(
                "SELECT id, citations FROM slack_answers WHERE citations LIKE ?", (f"%{article_id}%",)
            )
            citing.update(
                answer_id
                for answer_id, citations in rows
                if any(c.get("article_id") in forgotten for c in json.loads(citations or "[]"))
            )
        if citing:
            with self.catalog.transaction() as db:
                db.executemany(
                    "UPDATE slack_answers SET answer = ?, citations = '[]' WHERE id = ?",
                    [(WITHDRAWN, answer_id) for answer_id in sorted(citing)],
                )
            self.catalog.purge_deleted()
        return len(citing)

    def record_vote(self, answer_id: str, user: str, vote: int, *, channel: str | None, message_ts: str | None) -> None:
        """Store a click; a user's later click on the same answer replaces their earlier one."""
        if vote not in (-1, 1):
            raise ValueError(f"vote must be -1 or 1, not {vote!r}")
        with self.catalog.transaction() as db:
            db.execute(
                """INSERT INTO feedback (answer_id, user_id, vote, channel, message_ts, voted_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT(answer_id, user_id) DO UPDATE SET vote = excluded.vote,
                       voted_at = excluded.voted_at""",
                (answer_id, user, vote, channel, message_ts, now_iso()),
            )

    def turns(self, channel: str, thread_ts: str, before_ts: str) -> list[Turn]:
        """The thread's earlier questions and the answers shown to them (posted before `before_ts`), in order."""
        rows = self.catalog.fetch(
            """SELECT ts, question, answer FROM slack_answers
                   WHERE channel = ? AND thread_ts = ? AND ts IS NOT NULL""",
            (channel, thread_ts),
        )
        # A ts is a decimal string: compared as a number.
        earlier = sorted((float(ts), question, answer) for ts, question, answer in rows if float(ts) < float(before_ts))
        return [Turn(question=question, answer=answer) for _, question, answer in earlier]

    def votes(self, answer_id: str) -> dict[str, int]:
        rows = self.catalog.fetch(
            "SELECT user_id, vote FROM feedback WHERE answer_id = ? ORDER BY user_id", (answer_id,)
        )
        return {row[0]: row[1] for row in rows}

    def downvoted(self) -> Iterator[dict[str, Any]]:
        """Each answer somebody voted 👎, oldest vote first, as an eval-format record with what is known.

        `answers` and `evidence` are left for a person to fill in (and `answerable` too when Byline did
        answer); `notes` holds what Slack told us, so the record can be reviewed without the catalog."""
        rows = self.catalog.fetch(
            """SELECT a.id, a.question, a.answer, a.refused, a.citations, a.channel, a.ts,
                          SUM(CASE WHEN f.vote < 0 THEN 1 ELSE 0 END), SUM(CASE WHEN f.vote > 0 THEN 1 ELSE 0 END)
                   FROM feedback f JOIN slack_answers a ON a.id = f.answer_id
                   GROUP BY a.id HAVING SUM(CASE WHEN f.vote < 0 THEN 1 ELSE 0 END) > 0
                   ORDER BY MIN(f.voted_at), a.id"""
        )
        for answer_id, question, text, refused, citations, channel, ts, down, up in rows:
            sources = "; ".join(
                f"[{c.get('n')}] {c.get('title')} <{c.get('url') or c.get('path') or c.get('article_id')}>"
                for c in json.loads(citations or "[]")
            )
            said = "refused" if refused else f"answered: {text}" + (f" Sources: {sources}" if sources else "")
            yield {
                "id": f"slack-{answer_id}",
                "question": question,
                # A refusal voted down says the user expected an answer; for a given answer we cannot tell
                # whether it was wrong or should have been a refusal, so that is left for a person to decide.
                "answerable": True if refused else None,
                "answers": [],
                "evidence": [],
                "notes": f"Slack: {down} 👎, {up} 👍 (channel {channel}, ts {ts}). Byline {said}",
            }
