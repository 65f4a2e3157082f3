"""Help pages that read like a manual: `QUESTION`, `REF...`, `--since DATE`, flags with no placeholder.

typer's help shows a type column (`<str>`, `<list[str]>`, `<bool>` even on flags and `-h`) and writes required
arguments as `{name}` in the usage line. The root group (`BylineGroup`) tidies every command under it as it hands
it out, so commands other modules and plugins register get the same help without doing anything:

- an option shows its metavar (`--since DATE`), or its name in capitals when it declares none; a flag shows none;
- an argument shows its metavar in place of its type (`QUESTION`, `REF...`), and the usage line uses it bare
  when required and in brackets when optional.

Each command's docstring ends with one `Example:` line (a test holds every registered command to that).
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperGroup, TyperOption

# typer's methods take the Context of the click it vendors (a private module, `typer._click`); typer.Context
# subclasses it, so it is named loosely here rather than imported from there.
Context = Any


class BylineGroup(TyperGroup):
    """The `byline` group: its own options and every command below it get tidy help (see the module)."""

    def get_params(self, ctx: Context) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            tidy(param)
        return params

    def get_command(self, ctx: Context, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            tidy_command(command, ctx)
        return command


def tidy_command(command: Any, ctx: Context) -> None:
    """Tidy the parameters of `command` (its help option included) and of every subcommand of a group."""
    for param in command.get_params(ctx):
        tidy(param)
    for subcommand in getattr(command, "commands", {}).values():
        tidy_command(subcommand, ctx)


def tidy(param: Any) -> None:
    """Give `param` a metavar, and an argument the help display of `_Argument`. Safe to repeat."""
    if isinstance(param, TyperOption) and param.metavar is None:
        param.metavar = "" if param.is_flag else _choices(param) or param.name.upper()
    elif isinstance(param, TyperArgument):
        name = param.metavar or _choices(param) or param.name.upper()
        variadic = param.nargs != 1 and not name.endswith("...")
        param.metavar = f"{name}..." if variadic else name
        if type(param) is TyperArgument:
            # typer builds its own parameter objects; this subclass only changes how help shows them
            param.__class__ = _Argument


def _choices(param: TyperArgument | TyperOption) -> str | None:
    described = param.type_descriptor
    if not described.is_choice or not described.choices:
        return None
    return "|".join(str(getattr(choice, "value", choice)) for choice in described.choices)


class _Argument(TyperArgument):
    """An argument whose metavar says what goes there: no type column, no braces in the usage line."""

    def display_type_rich(self, ctx: Context) -> str | None:
        return None

    def get_usage_pieces(self, ctx: Context) -> list[str]:
        name = self.metavar or self.name.upper()
        return [name if self.required else f"[{name}]"]
