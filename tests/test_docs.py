"""The README is a landing page and the rest lives in docs/: the README is at most 300 lines, every relative link and
image in README.md and docs/*.md resolves to a file (and its #anchor to a heading of that page), every `pain3d VERB`
shown in their code is a verb of the command's parser, and the README's test command is the one CI runs."""

import argparse
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300  # read in ten minutes

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`]+`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
VERB = re.compile(r"(?:^|[\s`(;&|])pain3d\s+([a-z][a-z0-9-]*)")


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def without_code(text: str) -> str:
    """The page's prose: fenced blocks and inline code spans blanked (links are not links there)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def code_of(text: str) -> list[str]:
    """The page's fenced code blocks and inline code spans."""
    fenced = FENCE.findall(text)
    return fenced + INLINE_CODE.findall(FENCE.sub("", text))


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a page: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(without_code(page.read_text())) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def command_verbs() -> set[str]:
    """The verbs of the `pain3d` parser, read from the parser itself."""
    from pain3d.cli import build_parser

    parser = build_parser()
    return {verb for a in parser._actions if isinstance(a, argparse._SubParsersAction) for verb in a.choices}


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"


def test_pages_exist_and_link_somewhere():
    # The parsing below must see the pages' links, or every other test here passes vacuously.
    assert len(PAGES) > 5
    assert all(relative_links(page) for page in PAGES if page.name in {"README.md", "faces.md", "generating.md"})


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(ROOT) or not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no heading #{anchor} in {page_id(file)})")
    assert not broken, f"{page_id(page)}: broken links: {', '.join(broken)}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_shown_verbs_exist(page):
    verbs = command_verbs()
    shown = {verb for code in code_of(page.read_text()) for verb in VERB.findall(code)}
    assert shown <= verbs, f"{page_id(page)} shows pain3d verbs the command lacks: {sorted(shown - verbs)}"


def test_readme_verbs_cover_the_command():
    shown = {verb for code in code_of(README.read_text()) for verb in VERB.findall(code)}
    assert command_verbs() <= shown, f"README.md's command table lacks {sorted(command_verbs() - shown)}"


def test_readme_test_command_is_what_ci_runs():
    readme = [line for line in README.read_text().splitlines() if line.rstrip().endswith("python -m pytest")]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.rstrip().endswith("python -m pytest")]
    assert len(readme) == 1 and len(ci) == 1
    # CI installs quietly and fetches transformers' own tests; otherwise it runs the README's line as written.
    ci_as_shown = ci[0].replace(" -q", "").replace("fetch_transformers_tests && ", "").strip()
    assert readme[0].strip() == ci_as_shown
