"""The documentation site builds without a warning, and its examples run.

- ``mkdocs build --strict`` into a temporary directory (marker ``docs_build``; ``-m "not docs_build"``
  leaves it out): a broken link, a missing page or an API reference that does not resolve fails it.
- Every page under ``docs/`` runs its ```python blocks, in order, as one program (``page.py`` in a
  fresh directory, a fresh interpreter). A block preceded by ``<!-- not-run: reason -->`` is left
  out; each one left out is reported as a skipped test with its reason. A page that says
  ``<!-- run-also: postgres mariadb -->`` runs again on each of those servers: a fresh database,
  ``hivemind db upgrade --url URL`` on it, then the program with ``HIVEMIND_URL=URL``.
- Every ``hivemind ...`` command of a shell block names a command and options that exist: the
  words are checked against ``hivemind <command...> --help``.

README.md is not covered here: ``tests/test_readme.py`` runs its examples.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import backends

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>(?:(?!-->).)*?)\s*-->\s*$", re.S)
RUN_ALSO = re.compile(r"<!--\s*run-also:\s*(?P<servers>[\w\s,]*?)\s*-->")
SHELL = {"bash", "sh", "shell", "console"}
SERVERS = ("postgres", "mariadb")
RUN_TIMEOUT = 100  # seconds per program, below pytest's own timeout


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    source: str
    not_run: str | None  # the reason given in a <!-- not-run: ... --> comment before the block

    @property
    def excerpt(self) -> bool:
        """Only ``--8<-- "file:section"`` lines: code shown from a file the suite runs where it lives
        (the example projects under examples/, tested by tests/contrib)."""
        lines = [line for line in self.source.splitlines() if line.strip()]
        return bool(lines) and all(line.startswith("--8<--") for line in lines)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def blocks(page: Path) -> list[Block]:
    text = page.read_text("utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        opt_out = NOT_RUN.search(before[-500:])
        found.append(
            Block(
                page=page,
                line=text.count("\n", 0, match.start()) + 1,
                lang=match["lang"].lower(),
                source=textwrap.dedent(match["body"]),
                not_run=opt_out["reason"] if opt_out else None,
            )
        )
    return found


def run_also(page: Path) -> tuple[str, ...]:
    found = RUN_ALSO.search(page.read_text("utf-8"))
    if found is None:
        return ()
    servers = tuple(name for name in re.split(r"[\s,]+", found["servers"]) if name)
    unknown = set(servers) - set(SERVERS)
    assert not unknown, f"{page}: run-also names unknown servers {sorted(unknown)}; known: {SERVERS}"
    return servers


def _program_cases() -> list[object]:
    cases: list[object] = []
    for page in pages():
        python = [block for block in blocks(page) if block.lang == "python" and not block.excerpt]
        if not any(block.not_run is None for block in python):
            continue
        name = str(page.relative_to(DOCS))
        cases.append(pytest.param(page, "sqlite", id=name))
        cases.extend(pytest.param(page, server, id=f"{name}-{server}") for server in run_also(page))
    return cases


def _opt_outs() -> list[object]:
    return [
        pytest.param(block, id=block.where)
        for page in pages()
        for block in blocks(page)
        if block.lang == "python" and block.not_run is not None
    ]


# ---------------------------------------------------------------------------------------- the site


@pytest.mark.docs_build
def test_site_builds_without_warnings(tmp_path: Path) -> None:
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=environment,
        cwd=ROOT,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "reference" / "package" / "index.html").is_file()


# ---------------------------------------------------------------------------------- python blocks


def _clean_environment() -> dict[str, str]:
    """The test's environment without HIVEMIND_* settings of the machine (a program starts clean)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("HIVEMIND_")}


@contextmanager
def _server_url(server: str) -> Iterator[str]:
    """A fresh, empty database on ``server``, without ``auto_migrate``: the page's program runs
    after ``hivemind db upgrade``, as the pages tell their readers to."""
    if server not in backends.selected():
        pytest.skip(f"{server} is not in HIVEMIND_TEST_BACKENDS")
    backends.require(server)
    if server == "postgres":
        with backends.postgres_schema() as schema:
            yield f"{backends.PG_URL}?schema={schema}"
    else:
        with backends.mariadb_database() as database:
            parts = urlsplit(backends.MYSQL_URL)
            yield f"{parts.scheme}://{parts.netloc}/{database}"


def _run(command: list[str], cwd: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT)


@pytest.mark.parametrize(("page", "server"), _program_cases())
def test_page_examples_run(page: Path, server: str, tmp_path: Path) -> None:
    runnable = [
        block for block in blocks(page) if block.lang == "python" and block.not_run is None and not block.excerpt
    ]
    program = "\n\n".join(f"# {block.where}\n{block.source}" for block in runnable)
    (tmp_path / "page.py").write_text(program, "utf-8")
    environment = _clean_environment()
    if server == "sqlite":
        done = _run([sys.executable, "page.py"], tmp_path, environment)
    else:
        with _server_url(server) as url:
            upgrade = _run(
                [sys.executable, "-m", "hivemind_jobs", "db", "upgrade", "--url", url], tmp_path, environment
            )
            assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
            done = _run([sys.executable, "page.py"], tmp_path, {**environment, "HIVEMIND_URL": url})
    assert done.returncode == 0, (
        f"{page.relative_to(ROOT)} ({server}) exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )


@pytest.mark.parametrize("block", _opt_outs())
def test_opted_out_blocks_are_listed(block: Block) -> None:
    pytest.skip(f"{block.where} not run: {block.not_run}")


def test_opt_outs_give_a_reason_and_precede_python() -> None:
    for page in pages():
        for block in blocks(page):
            if block.not_run is not None:
                assert block.not_run, f"{block.where}: <!-- not-run: --> needs a reason"
                assert block.lang == "python", f"{block.where}: only python blocks run, nothing to opt out"


# ---------------------------------------------------------------------------- hivemind in shells


@functools.cache
def _help(path: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hivemind_jobs", *path, "--help"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=_clean_environment(),
        cwd=ROOT,
    )


def _subcommands(help_text: str) -> set[str]:
    section = help_text.partition("\nCommands:\n")[2]
    return {line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.split()}


def _options(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", help_text.partition("\nOptions:\n")[2]))


def _commands(script: str) -> Iterator[list[str]]:
    """The ``hivemind`` invocations of a shell script: one list of words each."""
    script = script.replace("\\\n", " ")
    for line in script.splitlines():
        if line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
        start = True
        for index, word in enumerate(words):
            if start and Path(word).name == "hivemind":
                command: list[str] = []
                for rest in words[index + 1 :]:
                    if rest in {"&&", "||", ";", "|", ">", ">>", "2>", "<"} or rest.startswith((">", "2>")):
                        break
                    command.append(rest)
                yield command
            start = word in {"&&", "||", ";", "|", "exec", "sudo", "env", "then", "do"} or bool(
                re.fullmatch(r"\w+=\S*", word)
            )


def check_command(words: list[str]) -> list[str]:
    """What is wrong with ``hivemind WORDS`` (nothing when the command and its options exist)."""
    path: list[str] = []
    leaf = False
    expects_value = False
    problems = []
    for word in words:
        done = _help(tuple(path))
        if done.returncode != 0:
            return [f"`hivemind {' '.join(path)} --help` failed: {done.stderr.strip()}"]
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            if name not in _options(done.stdout):
                problems.append(f"`hivemind {' '.join(path)}` has no option {name}")
            expects_value = "=" not in word
            continue
        if leaf:
            continue
        commands = _subcommands(done.stdout)
        if word in commands:
            path.append(word)
            expects_value = False
        elif commands and not expects_value:
            problems.append(f"`hivemind {' '.join(path)}` has no command {word!r} (it has {sorted(commands)})")
            break
        elif not commands:
            leaf = True
        expects_value = False
    done = _help(tuple(path))
    if done.returncode != 0:
        problems.append(f"`hivemind {' '.join(path)} --help` failed: {done.stderr.strip()}")
    return problems


def _shell_cases() -> list[object]:
    return [pytest.param(block, id=block.where) for page in pages() for block in blocks(page) if block.lang in SHELL]


@pytest.mark.parametrize("block", _shell_cases())
def test_shell_commands_exist(block: Block) -> None:
    problems = [
        f"{' '.join(words)}: {problem}" for words in _commands(block.source) for problem in check_command(words)
    ]
    assert not problems, f"{block.where}:\n" + "\n".join(problems)


def test_command_check_catches_mistakes() -> None:
    assert check_command(["worker", "--processes", "2", "myapp.jobs:hive"]) == []
    assert check_command(["--config", "x.toml", "db", "upgrade", "--url", "sqlite:///x.db"]) == []
    assert check_command(["worker", "--procs", "2", "app:hive"]) == ["`hivemind worker` has no option --procs"]
    assert check_command(["db", "migrate"])[0].startswith("`hivemind db` has no command 'migrate'")
    assert list(_commands("FOO=1 hivemind jobs ls --state failed | head  # comment\n")) == [
        ["jobs", "ls", "--state", "failed"]
    ]
    assert list(_commands("pip install 'hivemind-jobs[postgres]'\n")) == []


def test_blocks_are_found() -> None:
    sample = "text\n\n<!-- not-run: needs a mail server -->\n```python\nprint(1)\n```\n\n  ```bash\n  ls\n  ```\n"
    found = [
        (match["lang"], NOT_RUN.search(sample[: match.start()].rstrip()[-500:]) is not None)
        for match in FENCE.finditer(sample)
    ]
    assert found == [("python", True), ("bash", False)]


def test_excerpts_show_sections_of_tested_example_files() -> None:
    excerpts = [block for page in pages() for block in blocks(page) if block.excerpt]
    assert excerpts, "the integration pages show the example projects' code"
    for block in excerpts:
        for line in block.source.split():
            if line == "--8<--":
                continue
            path, _, section = line.strip('"').partition(":")
            assert path.startswith("examples/"), f"{block.where}: excerpts come from the tested example projects"
            text = (ROOT / path).read_text("utf-8")
            assert f"[start:{section}]" in text and f"[end:{section}]" in text, f"{block.where}: no section {section}"
