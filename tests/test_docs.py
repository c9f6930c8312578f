"""The README stays short and every relative link in README.md and docs/ leads somewhere."""
import re
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"`+[^`]*`+")
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _prose_lines(text: str, *, code_spans: bool = False) -> List[str]:
    """Lines outside fenced code blocks, with inline code spans removed unless ``code_spans``."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line if code_spans else _CODE_SPAN.sub("", line))
    return lines


def links(text: str) -> List[str]:
    """Link targets of a markdown text (inline, image and reference definitions), code excluded."""
    found = []
    for line in _prose_lines(text):
        found += _INLINE_LINK.findall(line)
        found += _REFERENCE_DEF.findall(line)
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> Set[str]:
    seen: Dict[str, int] = {}
    out = set()
    for line in _prose_lines(text, code_spans=True):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(path: Path) -> List[str]:
    """Relative links of ``path`` whose file, folder or heading anchor does not exist."""
    text = path.read_text(encoding="utf-8")
    problems = []
    for target in links(text):
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # http(s), mailto: not checked here
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            problems.append(f"{path.relative_to(ROOT)}: {target} (no such path)")
            continue
        if anchor and resolved.is_file() and resolved.suffix == ".md":
            if anchor.lower() not in anchors(resolved.read_text(encoding="utf-8")):
                problems.append(f"{path.relative_to(ROOT)}: {target} (no heading #{anchor})")
    return problems


def markdown_files() -> List[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_docs_index_links_every_topic_file():
    index = ROOT / "docs" / "README.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for t in links(index.read_text(encoding="utf-8"))
              if not _SCHEME.match(t) and t.partition("#")[0]}
    topics = {p.resolve() for p in (ROOT / "docs").glob("*.md") if p.name != "README.md"}
    missing = sorted(p.name for p in topics - linked)
    assert missing == [], f"docs/README.md does not link {missing}"


def test_checker_finds_broken_links(tmp_path, monkeypatch):
    """The checks above can fail: a missing file, a missing anchor and a dead reference link are caught;
    links inside code are not links."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title: `one` two\n\n## Same\n## Same\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#title-one-two) [ok](docs/a.md#same-1) [ok](#local)\n"
        "## Local\n"
        "[gone](docs/missing.md) [bad anchor](docs/a.md#nope) ![img](docs/pic.png)\n"
        "[ref]: docs/gone-too.md\n"
        "`[code](not/a/link.md)`\n```\n[fenced](not/a/link.md)\n```\n[web](https://example.org/x)\n",
        encoding="utf-8")
    assert broken_links(page) == [
        "README.md: docs/missing.md (no such path)",
        "README.md: docs/a.md#nope (no heading #nope)",
        "README.md: docs/pic.png (no such path)",
        "README.md: docs/gone-too.md (no such path)",
    ]
