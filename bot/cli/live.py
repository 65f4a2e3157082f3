"""What `byline ask` and `byline chat` show while an answer is made: a status line, then checked text.

On a terminal a status line ("Searching 171 articles…", "Writing the answer…") runs on stderr until the first
checked sentence arrives; the answer's text is then printed as each sentence passes the citation check, never
the model's raw reply; the sources follow. Piped, nothing is shown until the whole answer is printed.
"""

from __future__ import annotations

import json
import re
import sys
from types import TracebackType
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.status import Status

    from bot.answering.answerer import StatusCallback, TextCallback
    from bot.models import Answer

WIDTH = 100


class LiveAnswer:
    """One answer on the terminal: use as a context manager, pass `on_text`/`on_status` to `Byline.ask`, then
    `finish(answer)`."""

    def __init__(self, *, stream: bool, status: bool, width: int = WIDTH) -> None:
        self.stream = stream
        self.status = status
        self.shown = ""  # the checked text printed so far
        self._wrap = WordWrap(width)
        self._status_line: Status | None = None

    @classmethod
    def for_terminal(cls, stream: bool | None) -> LiveAnswer:
        """Text streams when asked to, or by default when stdout is a terminal; the status line shows when stderr
        is a terminal."""
        return cls(stream=sys.stdout.isatty() if stream is None else stream, status=sys.stderr.isatty())

    @property
    def on_text(self) -> TextCallback | None:
        return self._print_text if self.stream else None

    @property
    def on_status(self) -> StatusCallback | None:
        return self._show_status if self.status else None

    def __enter__(self) -> LiveAnswer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._clear_status()

    def finish(self, answer: Answer) -> None:
        """The rest of the answer: after streamed text its notice and sources, else all of it."""
        from bot.render import render_after_text, render_answer

        self._clear_status()
        typer.echo(render_after_text(answer, self._wrap.width) if self.shown else render_answer(answer))

    def _show_status(self, line: str) -> None:
        if self.shown:  # the answer's text has the screen now
            return
        if self._status_line is None:
            from rich.console import Console

            self._status_line = Console(stderr=True).status(line)
            self._status_line.start()
        else:
            self._status_line.update(line)

    def _print_text(self, piece: str) -> None:
        self._clear_status()
        typer.echo(self._wrap(piece), nl=False)  # click flushes after each write
        self.shown += piece

    def _clear_status(self) -> None:
        if self._status_line is not None:
            self._status_line.stop()
            self._status_line = None


class WordWrap:
    """Wraps text written a piece at a time at `width` columns, as `textwrap.fill` wraps a whole paragraph
    (which needs all of it at once); line breaks in the text are kept."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._column = 0
        self._space = False  # a space is due before the next word

    def __call__(self, piece: str) -> str:
        out: list[str] = []
        for token in re.findall(r"\s+|\S+", piece):
            if token.isspace():
                if "\n" in token:
                    out.append("\n" * token.count("\n"))
                    self._column, self._space = 0, False
                else:
                    self._space = self._column > 0
                continue
            if self._column and self._column + 1 + len(token) > self.width:
                out.append("\n")
                self._column = 0
            elif self._space:
                out.append(" ")
                self._column += 1
            out.append(token)
            self._column += len(token)
            self._space = False
        return "".join(out)


def print_json(answer: Answer) -> None:
    typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False))
