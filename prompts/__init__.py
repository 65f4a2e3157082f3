"""Prompt templates stored as files beside this module, filled by `render_prompt` with checked variables.

Templates use `string.Template` syntax (`$name`, `$$` for a dollar sign) so that JSON examples and braces in a
prompt need no escaping. `PROMPT_VARIABLES` is the code's side of the contract: each template must use exactly
the variables the code fills, no more and no fewer.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

PROMPT_DIR = Path(__file__).parent

# What the code fills in, per template. A template file missing here is an error: nothing goes unchecked.
PROMPT_VARIABLES: dict[str, frozenset[str]] = {
    "answer_system": frozenset({"cannot_answer"}),
    "answer_user": frozenset({"sources", "question", "cannot_answer"}),
    "condense": frozenset({"history", "question"}),
    "judge": frozenset({"question", "gold", "answer", "passages"}),
}


class PromptError(ValueError):
    """A template is missing, malformed, or its variables do not match what the code fills."""


def prompt_names() -> list[str]:
    """The template files bundled in this package."""
    return sorted(p.stem for p in PROMPT_DIR.glob("*.md"))


@cache
def load_prompt(name: str) -> Template:
    """The template `name`, checked against `PROMPT_VARIABLES[name]`."""
    if name not in PROMPT_VARIABLES:
        raise PromptError(f"prompt {name!r}: no variable list in PROMPT_VARIABLES")
    path = PROMPT_DIR / f"{name}.md"
    try:
        template = Template(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PromptError(f"prompt {name!r}: file {path} not found") from exc
    if not template.is_valid():
        raise PromptError(f"prompt {name!r}: a '$' that is not a $variable (write $$ for a dollar sign)")
    used = frozenset(template.get_identifiers())
    expected = PROMPT_VARIABLES[name]
    if used != expected:
        problems = []
        if missing := expected - used:
            problems.append(f"missing {sorted(missing)}")
        if unknown := used - expected:
            problems.append(f"unknown {sorted(unknown)}")
        raise PromptError(f"prompt {name!r}: variables do not match the code: {', '.join(problems)}")
    return template


def render_prompt(name: str, **variables: str) -> str:
    """Fill template `name`; the variables given must be exactly the ones it declares."""
    template = load_prompt(name)
    expected = PROMPT_VARIABLES[name]
    if set(variables) != expected:
        raise PromptError(f"prompt {name!r}: filled with {sorted(variables)}, expects {sorted(expected)}")
    # substitute (not safe_substitute): a value's own '$' is never re-expanded, and nothing is left unfilled.
    return template.substitute(variables).strip()
