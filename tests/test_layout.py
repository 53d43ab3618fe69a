"""The layout a newcomer relies on: `utils/` at the bottom, and documented commands that still run.

Every shell command in README.md and docs/*.md that runs one of the project's scripts is read, and each
of its flags must be one that the script's parser (or, for a shell script, its text) knows: renaming a
flag without updating the docs fails here.
"""

import argparse
import ast
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROJECT_MODULES = {path.stem for path in REPO.glob("*.py")} | {
    path.parent.name for path in REPO.glob("*/__init__.py")
}


def imported_top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((REPO / "utils").glob("*.py")), ids=lambda path: path.name)
def test_utils_import_nothing_of_the_project_above_them(path):
    assert imported_top_level_names(path) & (PROJECT_MODULES - {"utils"}) == set()


def code_spans(text: str) -> list[str]:
    """Fenced code blocks (backslash continuations joined) line by line, and inline code spans."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    inline = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return lines + re.findall(r"`([^`\n]+)`", inline)


def script_of(words: list[str]) -> tuple[str, list[str]] | None:
    """(script, arguments) of `python [options] X.py ...`, `python -m X ...`, `torchrun [options] X.py ...`
    or `bash X.sh ...` (the words after the program), if X is the project's."""
    for index, word in enumerate(words):
        if word == "-c":
            return None
        if word == "-m" and index + 1 < len(words) and words[index + 1].split(".")[0] in PROJECT_MODULES:
            return words[index + 1], words[index + 2 :]
        if word.endswith((".py", ".sh")):
            return (word, words[index + 1 :]) if (REPO / word).is_file() else None
    return None


def commands(text: str) -> list[tuple[str, list[str]]]:
    """(script, its arguments) of every command in `text`'s code that runs one of the project's scripts."""
    found = []
    for span in code_spans(text):
        for part in re.split(r"&&|\|\||;|\|", span):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                continue
            starts = [i for i, word in enumerate(words) if word in ("python", "python3", "torchrun", "bash")]
            command = script_of(words[starts[0] + 1 :]) if starts else None
            if command is not None:
                found.append(command)
    return found


class Parsed(BaseException):
    """Raised in place of parsing, carrying the parser a script built."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    options = set()
    for action in parser._actions:
        options.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                options |= option_strings(subparser)
    return options


def known_flags(script: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The flags a script accepts: its parser's, caught as the script starts parsing."""
    if script.endswith(".sh"):
        return set(re.findall(r"--[a-z][a-z0-9_-]*", (REPO / script).read_text()))

    def capture(parser, *args, **kwargs):
        raise Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
    monkeypatch.setattr(sys, "argv", [script])
    path = REPO / script if script.endswith(".py") else REPO / (script.replace(".", "/") + ".py")
    try:
        runpy.run_path(str(path), run_name="__main__")
    except Parsed as parsed:
        return option_strings(parsed.parser)
    except ModuleNotFoundError as missing:  # a script needing what is not installed (TensorFlow)
        assert missing.name.split(".")[0] not in PROJECT_MODULES, missing
        return set(re.findall(r"""["'](--[a-z][a-z0-9_]*)["']""", path.read_text()))
    raise AssertionError(f"{script} did not parse a command line")


def unknown_flags(docs: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`doc: script --flag` for each documented flag its script does not know."""
    known: dict[str, set[str]] = {}
    unknown = []
    for doc, text in docs.items():
        for script, args in commands(text):
            if script not in known:
                with monkeypatch.context() as patch:
                    known[script] = known_flags(script, patch)
            flags = [arg.split("=")[0] for arg in args if arg.startswith("--")]
            unknown += [f"{doc}: {script} {flag}" for flag in flags if flag not in known[script]]
    return unknown


DOC_TEXTS = {path.relative_to(REPO).as_posix(): path.read_text() for path in DOCS}


def test_the_docs_show_commands_of_the_main_scripts():
    scripts = {script for text in DOC_TEXTS.values() for script, _ in commands(text)}
    main_scripts = {
        "train_segmentation.py",
        "evaluate.py",
        "segment.py",
        "embed_images.py",
        "find_direction.py",
    }
    assert main_scripts | {"download_all.sh"} <= scripts


def test_every_documented_flag_is_one_its_script_knows(monkeypatch):
    assert unknown_flags(DOC_TEXTS, monkeypatch) == []


def test_a_flag_renamed_in_the_docs_is_caught(monkeypatch):
    """The check reads what it should: the README with `--demo` renamed fails, naming it."""
    readme = DOC_TEXTS["README.md"]
    assert "--demo" in readme
    renamed = {"README.md": readme.replace("--demo", "--demo_run")}
    assert "README.md: train_segmentation.py --demo_run" in unknown_flags(renamed, monkeypatch)
