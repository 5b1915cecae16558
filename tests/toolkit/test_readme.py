"""The README stays short and true: at most 200 lines, every `edgekit` command in its fenced blocks uses
subcommands and options that `edgekit COMMAND --help` lists (and that edgekit's own parser accepts), the
test command is the one CI runs, and every relative link in the README and docs/ resolves (file and anchor).

Camera commands are checked like the others: parsing them needs no camera, only running them would.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MAX_LINES = 200


def fenced_lines(text: str) -> list[str]:
    """The lines of every ```bash / ```sh / ```console block (a trailing backslash joins lines)."""
    lines, inside, joined = [], False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside and line[3:].strip() in ("bash", "sh", "shell", "console")
            continue
        if inside:
            joined += line.rstrip()
            if joined.endswith("\\"):
                joined = joined[:-1] + " "
                continue
            lines.append(joined)
            joined = ""
    return lines


def edgekit_commands(text: str) -> list[list[str]]:
    """Each `edgekit ...` invocation in the fenced blocks, as argument lists (without `edgekit`)."""
    commands = []
    for line in fenced_lines(text):
        words = shlex.split(line, comments=True)
        segment: list[str] = []
        for word in words + ["&&"]:
            if word in ("&&", "||", ";", "|"):
                if "edgekit" in segment:
                    commands.append(segment[segment.index("edgekit") + 1:])
                segment = []
            else:
                segment.append(word)
    return commands


@lru_cache(maxsize=None)
def help_text(subcommand: str) -> str:
    env = {**os.environ, "COLUMNS": "300", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run([sys.executable, "-m", "edgekit.toolkit.cli", subcommand, "--help"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, f"`edgekit {subcommand} --help` failed: {done.stderr.strip()[-300:]}"
    return done.stdout


def help_options(subcommand: str) -> dict[str, list[str] | None]:
    """Every option `edgekit SUBCOMMAND --help` lists, with its choices when the help shows `<a|b|c>`."""
    options: dict[str, list[str] | None] = {}
    for line in help_text(subcommand).splitlines():
        m = re.match(r"\s+(?:-\w,\s+)?(--[\w-]+(?:\s*/\s*--[\w-]+)?)(?:\s+<([^>]+)>)?", line)
        if not m:
            continue
        choices = m.group(2).split("|") if m.group(2) and "|" in m.group(2) else None
        for name in re.split(r"\s*/\s*", m.group(1)):
            options[name] = choices
    return options


def check_command(args: list[str]) -> list[str]:
    """What is wrong with one README command: an unknown subcommand or option, a value its help does not list."""
    if not args or args[0].startswith("-"):
        return [] if not args or args[0] in ("--help", "--version") else [f"edgekit {' '.join(args)}: no subcommand"]
    from edgekit.toolkit.cli import app
    import typer.main

    group = typer.main.get_command(app)
    sub, rest = args[0], args[1:]
    if sub not in group.commands:
        return [f"edgekit {sub}: no such subcommand (known: {', '.join(sorted(group.commands))})"]
    problems = []
    options = help_options(sub)
    for i, word in enumerate(rest):
        if not word.startswith("--"):
            continue
        name, _, value = word.partition("=")
        if name not in options:
            problems.append(f"edgekit {sub}: option {name} is not in `edgekit {sub} --help`")
            continue
        choices = options[name]
        if choices is not None:
            value = value or (rest[i + 1] if i + 1 < len(rest) else "")
            if value.split(",")[0] not in choices:
                problems.append(f"edgekit {sub} {name} {value}: `--help` lists only {'|'.join(choices)}")
    # edgekit's own parser (click, through Typer) must accept the whole line: argument counts, types, choices.
    try:
        group.commands[sub].make_context(sub, list(rest))
    except Exception as e:  # click's UsageError/BadParameter (Typer vendors click, so no import of it here)
        problems.append(f"edgekit {' '.join(args)}: the parser refuses it ({e})")
    return problems


def test_readme_is_at_most_200_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; keep it at most {MAX_LINES} and move detail to docs/"


def test_every_readme_command_uses_options_its_help_lists():
    commands = edgekit_commands(README.read_text(encoding="utf-8"))
    subcommands = {c[0] for c in commands if c}
    # The README shows the whole product; a check that found nothing to check must fail.
    assert {"train", "export", "validate", "predict", "webcam"} <= subcommands, subcommands
    problems = [p for c in commands for p in check_command(c)]
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_wrong_option_and_a_wrong_choice():
    assert check_command(["train", "--data", "mnist.npz", "--recipe", "full"]) == []
    assert any("--max-frame " in p for p in check_command(["webcam", "--model", "m.tflite", "--max-frame", "3"]))
    assert any("lists only" in p for p in check_command(["train", "--recipe", "fulll"]))
    assert check_command(["trian"])


def test_readme_test_command_is_the_one_ci_runs():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    marker = max(i for i, line in enumerate(ci) if line.startswith("#") and "README's test command" in line)
    ci_command = next(line.strip() for line in ci[marker + 1:] if line.strip() and not line.startswith("#"))
    readme_lines = fenced_lines(README.read_text(encoding="utf-8"))
    assert any(line.rstrip().endswith(ci_command) for line in readme_lines), (
        f".ci/run runs `{ci_command}`, which the README's quickstart does not show"
    )


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    found, inside = set(), False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = not inside
        if inside or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def markdown_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def test_every_relative_link_resolves():
    checked, problems = 0, []
    for page in markdown_files():
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            rel = file.relative_to(REPO).as_posix() if file.is_relative_to(REPO) else str(file)
            if not file.exists():
                problems.append(f"{page.relative_to(REPO)}: link {target} -> {rel} does not exist")
                continue
            checked += 1
            if anchor and file.suffix == ".md" and anchor not in anchors(file):
                problems.append(f"{page.relative_to(REPO)}: link {target}: no heading #{anchor} in {rel}")
    assert checked >= 8, f"only {checked} relative links checked"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["training", "export", "validate", "quantization", "runtime", "collect", "raspberry-pi", "benchmarks", "bad-inputs", "testing"])
def test_readme_links_each_docs_page(name):
    assert f"(docs/{name}.md)" in README.read_text(encoding="utf-8")
