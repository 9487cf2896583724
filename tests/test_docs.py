"""The README and docs/ stay true: links resolve, named files exist, the CLI reference is current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekv.cli import VERBS, cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def prose(text: str) -> str:
    """The text outside fenced code blocks (a ``# comment`` in a bash block is not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for m in re.finditer(r"^#{1,6} +(.+?) *#*$", prose(page.read_text()), re.M):
        slug = github_slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")  # GitHub numbers repeated headings
    return out


def test_github_slug_matches_githubs_rules() -> None:
    # GitHub: lower case, punctuation (. ' ( ) `) dropped, each space a hyphen, hyphens kept
    assert github_slug("Quick start (two commands)") == "quick-start-two-commands"
    assert github_slug("Parallel samples at llama.cpp's speed (`edgekv bench --parallel`)") == (
        "parallel-samples-at-llamacpps-speed-edgekv-bench---parallel"
    )
    assert github_slug("What it converts") == "what-it-converts"
    assert github_slug("edgekv pick") == "edgekv-pick"


def test_every_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in PAGES[1:] if f"](docs/{p.name})" not in readme]
    assert not unlinked


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken: list[str] = []
    for target in LINK.findall(CODE_SPAN.sub("", prose(page.read_text()))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or ROOT not in [dest, *dest.parents]:
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


REPO_PATH = re.compile(r"(?:edgekv|bench|tests|models|docs|\.ci)/[\w./-]*")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_files_and_modules_exist(page: Path) -> None:
    """A path in a code span (`edgekv/plan/fit.py`, `bench/results/gpu_grid.jsonl`) is relative to the
    repository and exists; `python -m edgekv.x` names a module that exists."""
    text = page.read_text()
    missing: list[str] = []
    for span in CODE_SPAN.findall(prose(text)):
        for m in REPO_PATH.finditer(span):
            path = m.group(0).rstrip(".")
            if m.start() and span[m.start() - 1] in "/.~$<*":  # part of another path: ~/.cache/edgekv/...
                continue
            if not re.search(r"[*<>]", span[m.end() : m.end() + 1]) and not (ROOT / path).exists():
                missing.append(path)
    for module in re.findall(r"python -m (edgekv(?:\.\w+)*)", text):
        base = ROOT / module.replace(".", "/")
        if not (base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()):
            missing.append(f"python -m {module}")
    assert not missing, f"{page.relative_to(ROOT)} names what does not exist: {sorted(set(missing))}"


def test_cli_reference_is_current() -> None:
    """docs/cli.md is exactly what `python -m edgekv.clidoc` writes today."""
    proc = subprocess.run([sys.executable, "-m", "edgekv.clidoc"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (ROOT / "docs" / "cli.md").read_text() == proc.stdout, (
        "docs/cli.md is stale: run python -m edgekv.clidoc > docs/cli.md"
    )


def _section(text: str, verb: str) -> str:
    start = text.index(f"\n## edgekv {verb}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize("verb", list(VERBS))
def test_cli_reference_lists_every_option_of_help(verb: str) -> None:
    """Each command's section names every option its --help shows, and the same usage line."""
    result = CliRunner().invoke(cli, [verb, "--help"], prog_name="edgekv", terminal_width=200)
    assert result.exit_code == 0, result.output
    section = _section((ROOT / "docs" / "cli.md").read_text(), verb)
    usage = result.output.splitlines()[0]
    assert usage.startswith(f"Usage: edgekv {verb}") and usage in section
    options = set(re.findall(r"^  (-[-\w]+(?:, -[-\w]+)*(?: / -[-\w]+)?)", result.output, re.M))
    assert options
    rows = set(re.findall(r"^\| `(-[-\w]+(?:, -[-\w]+)*(?: / -[-\w]+)?)", section, re.M))
    assert options == rows
