"""docs/cli.md describes every ``hivemind`` command and each of its options, so it stays complete
when a command or an option is added."""

from __future__ import annotations

import re
from pathlib import Path

import click

from hivemind_jobs.cli.main import cli
from hivemind_jobs.cli.settings import commands

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
_HEADING = re.compile(r"^#{2,3} `hivemind ([a-z -]+)`$", re.MULTILINE)


def _sections() -> dict[str, str]:
    """The text under each ``## `hivemind ...``` heading, by command path; "" is the preamble."""
    text = REFERENCE.read_text(encoding="utf-8")
    found = list(_HEADING.finditer(text))
    sections = {"": text[: found[0].start()] if found else text}
    for index, match in enumerate(found):
        end = found[index + 1].start() if index + 1 < len(found) else len(text)
        sections[match.group(1)] = text[match.end() : end]
    return sections


def test_every_command_has_its_section() -> None:
    sections = _sections()
    paths = [" ".join(path) for path, _command in commands(cli)]
    assert len(paths) > 20
    missing = [path for path in paths if path not in sections]
    assert missing == [], f"docs/cli.md has no section for: {', '.join('hivemind ' + p for p in missing)}"
    unknown = [path for path in sections if path and path not in paths]
    assert unknown == [], f"docs/cli.md describes commands that do not exist: {unknown}"


def test_every_option_is_described() -> None:
    sections = _sections()
    undocumented = []
    for path, command in commands(cli):
        # an option may be described in the command's section, its group's or the preamble
        # (the options every command shares: --url, --env, --prefix, --app)
        where = [sections.get(" ".join(path[:depth]), "") for depth in range(len(path) + 1)]
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            for option in param.opts:
                if option.startswith("--") and not any(f"`{option}" in text for text in where):
                    undocumented.append(f"hivemind {' '.join(path)} {option}")
    for option in ("--config", "--version"):
        if f"`{option}" not in sections[""]:
            undocumented.append(f"hivemind {option}")
    assert undocumented == [], f"docs/cli.md does not describe: {', '.join(undocumented)}"
