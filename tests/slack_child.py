"""`byline slack` as the command line runs it, in a process of its own, with a scripted answerer in place of
Byline's (every answer takes ANSWER_SECONDS): for the tests and the load test that need the real command.

    python tests/slack_child.py ANSWER_SECONDS slack --http --host 127.0.0.1 --port N
"""

from __future__ import annotations

import sys
import time

from slack_harness import ScriptedAsk, make_answer

from bot.cli import main as cli
from bot.cli import slack as slack_command
from bot.models import Answer


def scripted(seconds: float) -> ScriptedAsk:
    def reply(question: str) -> Answer:
        time.sleep(seconds)
        return make_answer(question)

    return ScriptedAsk(reply)


def main() -> None:
    seconds, *args = sys.argv[1:]
    # The command builds its answerer with BylineAnswers(byline): the scripted one stands in for it.
    slack_command.BylineAnswers = lambda byline: scripted(float(seconds))  # type: ignore[assignment,misc]
    sys.argv = ["byline", *args]
    cli.main()


if __name__ == "__main__":
    main()
