"""`--help` of every registered command reads cleanly: metavars (QUESTION, REF..., --since DATE), no type
placeholders such as `<bool>` or `<list[str]>`, no `{name}` in the usage line, and one example line each.

The commands are found by walking the built app, so commands added later (by other modules or through the
`byline.commands` entry points) are held to the same rules."""

from __future__ import annotations

import re
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from bot.cli.main import build_app

# typer's type column: <bool>, <str>, <path>, <int range>, <list[str]>, <a|b>...
TYPE_PLACEHOLDER = re.compile(r"<[\w\[\]| ,.]+>")
WIDE = {"COLUMNS": "200"}


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the `byline` app, the app itself first, as argument paths."""
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not sub.hidden:
                walk(sub, (*path, name))

    walk(typer.main.get_command(build_app()), ())
    return paths


def help_page(app: typer.Typer, path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_found() -> None:
    paths = command_paths()
    expected = {("ask",), ("ingest",), ("forget",), ("feeds", "add"), ("feedback", "export"), ("eval",), ("bench",)}
    assert expected <= set(paths) and paths[0] == ()


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "byline")
def test_help_has_metavars_and_an_example(path: tuple[str, ...]) -> None:
    page = help_page(build_app(), path)
    assert not TYPE_PLACEHOLDER.search(page), TYPE_PLACEHOLDER.findall(page)
    usage = next(line for line in page.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    examples = [line.strip(" │") for line in page.splitlines() if line.strip(" │").startswith("Example: ")]
    assert len(examples) == 1, page
    assert examples[0].startswith(" ".join(["Example: byline", *path]))


def test_flags_show_no_placeholder_and_values_show_their_metavar() -> None:
    page = help_page(build_app(), ("ask",))
    lines = {line.split()[1]: line for line in page.splitlines() if re.match(r"│ +-", line)}
    assert re.search(r"--json +Print one JSON object", lines["--json"])
    assert re.search(r"-h +Show this message", lines["--help"])
    assert re.search(r"--since +DATE +Only articles", lines["--since"])
    assert re.search(r"-k +N \[x>=1\] +Passages", lines["-k"])
    assert "Usage: byline ask [OPTIONS] QUESTION" in page
    forget = help_page(build_app(), ("forget",))
    assert "Usage: byline forget [OPTIONS] REF..." in forget and re.search(r"\* +REF\.\.\. +Article ids", forget)
    assert "Usage: byline ingest [OPTIONS] [SOURCE...]" in help_page(build_app(), ("ingest",))


def test_a_command_registered_later_gets_the_same_help() -> None:
    """As a plugin's or another module's command would: no metavars declared, a list argument and a flag."""

    def digest(
        refs: Annotated[list[str], typer.Argument(help="What to digest.")],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would happen.")] = False,
        out_dir: Annotated[str | None, typer.Option(help="Where to write.")] = None,
    ) -> None:
        """Digest things."""

    app = build_app()
    app.command("digest")(digest)
    page = help_page(app, ("digest",))
    assert not TYPE_PLACEHOLDER.search(page), page
    assert "Usage: byline digest [OPTIONS] REFS..." in page
    assert re.search(r"--out-dir +OUT_DIR +Where to write", page)
    assert re.search(r"--dry-run +Only say", page)
    # the help is only shown differently: the command still parses as before
    result = CliRunner().invoke(app, ["digest"])
    assert result.exit_code == 2 and "Missing argument 'REFS...'" in result.output
