"""The README and docs/ held to the code.

Marked passages must be what `ci.docs` generates from the code today; every option of every
documented command must exist on the command itself: `dagger call` chains against the
module's functions and the engine's GraphQL schema (the one the chain tests validate
against), `python -m` commands against their own `--help`.
"""

from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import graphql
import pytest

from ci import docs, python_check
from tests.dagger_offline import REPO, SCHEMA_FILE

README = REPO / "README.md"
INLINE = re.compile(r"`((?:\.venv/bin/)?python3? -m [^`]+|dagger call [^`]+)`")
OURS = {"ci", "bench", "steadydancer", "tests"}
"""The project's packages; the docs also show other programs (pip, ComfyUI's main.py)."""


def code_lines(text: str) -> list[str]:
    """Commands in indented or fenced code blocks (continuations joined) and inline spans."""
    lines: list[str] = []
    fenced = False
    pending = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not (fenced or raw.startswith("    ") or pending):
            lines += INLINE.findall(raw)
            continue
        line = pending + " " + raw.strip() if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        lines.append(line)
    return lines


def commands(text: str) -> list[list[str]]:
    found = []
    for line in code_lines(text):
        for part in re.split(r"&&|\|", line):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                continue
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words = words[1:]  # the command's environment
            if words[:1] == ["dagger"] or (words[:1] and words[0].endswith(("python", "python3"))):
                found.append(words)
    return found


def documented() -> list[tuple[str, list[str]]]:
    return [
        (str(path.relative_to(REPO)), words)
        for path in docs.documents()
        for words in commands(path.read_text())
    ]


@functools.cache
def schema() -> graphql.GraphQLSchema:
    return graphql.build_schema(SCHEMA_FILE.read_text())


def squash(name: str) -> str:
    """A name as both spellings agree on: the CLI's kebab case, GraphQL's camel case."""
    return name.replace("-", "").replace("_", "").lower()


def named(kind: graphql.GraphQLType) -> graphql.GraphQLNamedType:
    return typing.cast(graphql.GraphQLNamedType, graphql.get_named_type(kind))


def check_dagger(words: list[str]) -> list[str]:
    """Problems with `dagger call FUNCTION [--opt [value]]... [field [--opt [value]]...]...`."""
    rest = words[words.index("call") + 1 :]
    functions = docs.module_functions()
    if rest[0] not in functions:
        return [f"no function {rest[0]!r}"]
    function = functions[rest[0]]
    options = {name: kind == "bool" for name, _d, kind, _doc in docs.arguments(function)}
    returns = typing.get_type_hints(function)["return"]
    current: str | None = returns.__name__ if returns is not str else None
    problems = []
    i = 1
    while i < len(rest):
        word = rest[i]
        if word.startswith("--"):
            name = word.split("=", 1)[0]
            if name == "--help":
                pass
            elif name not in options:
                problems.append(f"{rest[0]} has no {name}; it takes {', '.join(options)}")
            elif "=" not in word and not options[name]:
                i += 1
        else:
            kind = schema().type_map.get(current or "")
            fields = getattr(kind, "fields", {})
            found = {squash(field): (field, spec) for field, spec in fields.items()}
            if squash(word) not in found:
                problems.append(f"{current or 'a string'} has no field {word!r}")
                break
            field, spec = found[squash(word)]
            options = {
                "--" + re.sub(r"(?<!^)([A-Z])", r"-\1", arg).lower(): named(a.type).name
                == "Boolean"
                for arg, a in spec.args.items()
            }
            current = named(spec.type).name
            rest[0] = field
        i += 1
    return problems


@functools.cache
def help_options(program: str, subcommand: str | None) -> set[str]:
    """The options a program's --help names: a module, or a script's path."""
    run = [program] if program.endswith(".py") else ["-m", program]
    argv = [sys.executable, *run, *([subcommand] if subcommand else []), "--help"]
    out = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{REPO / 'docker'}"},
    )  # fmt: skip
    assert out.returncode == 0, f"{' '.join(argv[1:])}: {out.stderr[-2000:]}"
    return set(re.findall(r"--[A-Za-z][-A-Za-z0-9_]*", out.stdout))


def check_python(words: list[str]) -> list[str]:
    start = words.index("-m") + 1 if "-m" in words else 1
    module, rest = words[start], words[start + 1 :]
    used = [word.split("=", 1)[0] for word in rest if word.startswith("--")]
    ours = (REPO / module).is_file() or module.split(".")[0] in OURS
    if not ours or not used:
        return []
    sub = rest[0] if rest and not rest[0].startswith("-") and "/" not in rest[0] else None
    known = help_options(module, sub)
    return [f"{module} has no {name}" for name in used if name not in known]


def test_every_generated_passage_is_what_the_code_gives() -> None:
    assert docs.stale() == [], "run: .venv/bin/python -m ci.docs"


def test_a_number_changed_by_hand_is_found(tmp_path: Path) -> None:
    shutil.copy(README, tmp_path / "README.md")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "models.md"
    text = page.read_text()
    fp8 = docs.GENERATORS["variants"]().splitlines()[2]
    assert fp8 in text
    page.write_text(text.replace(fp8, fp8.replace("28.", "27.")))
    assert docs.stale(tmp_path) == ["docs/models.md: variants"]
    assert docs.main(["--check"]) == 0


def test_an_unknown_passage_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("<!-- BEGIN no-such -->1<!-- END no-such -->")
    with pytest.raises(docs.UnknownPassage, match="'no-such'"):
        docs.stale(tmp_path)


def test_the_docs_state_what_the_catalog_records() -> None:
    """The sizes the old README got wrong come from the catalog: fp8's unsized file named."""
    fp8 = docs.variant_size("fp8")
    unsized = [e.filename for e in docs.catalog.CATALOG_VARIANTS["fp8"].unsized]
    assert all(name in fp8 for name in unsized)
    assert ("every file sized" in fp8) == (not unsized)


def test_every_documented_command_has_the_options_it_is_shown_with() -> None:
    found = documented()
    assert sum(words[0] == "dagger" for _, words in found) >= 10
    problems = []
    for where, words in found:
        check = check_dagger if words[:2] == ["dagger", "call"] else check_python
        if words[0] == "dagger" and words[:2] != ["dagger", "call"]:
            continue
        problems += [f"{where}: {shlex.join(words)}: {p}" for p in check(words)]
    assert problems == []


def test_the_command_checks_catch_a_misspelt_option() -> None:
    assert check_dagger(["dagger", "call", "build", "--bake-model=false", "sync"])
    assert check_dagger(["dagger", "call", "build", "export", "--paht", "x.tar"])
    assert check_dagger(["dagger", "call", "publish", "--address", "a/b", "expor"])
    assert not check_dagger(
        ["dagger", "call", "build", "--bake-models=false", "experimental-with-all-gp-us",
         "as-service", "--use-entrypoint", "up", "--ports", "8188:8188"]
    )  # fmt: skip
    assert check_python(["python", "-m", "ci.plan", "--bake-models=false"])


def test_the_readme_is_a_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 150
    setup, tests = lines[2].strip(), lines[3].strip()
    assert setup.startswith("python3 -m ci.python_check && python3 -m venv .venv")
    assert tests == ".venv/bin/python -m pytest"
    assert (REPO / ".ci" / "run").read_text().splitlines()[-1] == tests


def test_the_first_command_refuses_another_python(monkeypatch, capsys) -> None:
    assert python_check.main([]) == 0
    monkeypatch.setattr(python_check, "WANTED", "3.99")
    assert python_check.main([]) == 1
    assert "needs Python 3.99" in capsys.readouterr().err
    assert python_check.main(["--bogus"]) == 2


def test_the_dagger_version_installed_is_the_engine_the_module_pins() -> None:
    assert f"DAGGER_VERSION={docs.engine_version().removeprefix('v')}" in README.read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"dagger-io=={docs.engine_version().removeprefix("v")}"' in pyproject


def test_the_log_lines_the_readme_quotes_are_the_entrypoints() -> None:
    quoted = re.findall(r"`(comfyui: [a-z]+)`", README.read_text())
    source = (REPO / "docker" / "steadydancer" / "entrypoint.py").read_text()
    assert quoted and all(f'log(f"{line}' in source for line in quoted)
