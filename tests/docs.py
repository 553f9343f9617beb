"""Reading the README and docs/*.md as the tests of the documents need them: links, sections, code blocks.

Kept to what GitHub renders: ATX headings (``## Title``) give anchors as GitHub
makes them (lower case, punctuation dropped, spaces to hyphens, ``-1``... for
repeats); a fenced block's marker is the HTML comment on the line before it:

* ``<!-- example -->`` before a ``console`` block: tests/e2e/test_doc_examples.py
  runs its ``$ `` commands and compares what they print with the lines after them
  (``EDGECAM_UPDATE_DOC_EXAMPLES=1`` writes what they print into the page instead);
* ``<!-- not run: REASON -->``: a command block deliberately not run, and why;
* ``<!-- check-pi: ... -->``: the block ``make check-pi`` runs (tools/check-pi).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Blocks of these languages hold commands a reader may copy, so each must say whether a test runs it.
COMMAND_LANGS = ("sh", "bash", "shell", "console")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
COMMENT = re.compile(r"<!--(.*?)-->", re.S)


def documents() -> list[Path]:
    """The README and every page in docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def rel(path: Path) -> str:
    """The path as the repository names it (a page elsewhere, as in the tests' own samples: as given)."""
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it starts, its language, the comment before it and its lines."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    marker: str  # the text of the HTML comment on the line before the fence, or ""
    body: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{rel(self.path)}:{self.line}"

    @property
    def is_command(self) -> bool:
        return self.lang in COMMAND_LANGS or any(line.startswith("$ ") for line in self.body[:1])


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2).lower(), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        before = lines[start - 1].strip() if start > 0 else ""
        c = COMMENT.fullmatch(before)
        out.append(Block(path, start + 1, lang, c.group(1).strip() if c else "", tuple(lines[start + 1:j])))
        i = j + 1
    return out


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced blocks, inline code blanked out (but in headings: anchors)."""
    out = []
    in_fence = None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if in_fence:
            if line.startswith(in_fence):
                in_fence = None
            continue
        if m:
            in_fence = m.group(1)
            continue
        out.append((n, line if HEADING.match(line) else re.sub(r"`[^`]*`", "``", line)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text stays, its target goes
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@dataclass(frozen=True)
class Section:
    """A heading and the prose lines under it up to the next heading (of any level)."""

    level: int
    title: str
    line: int
    parent: "Section | None"
    lines: tuple[tuple[int, str], ...]

    def chain(self):
        s = self
        while s is not None:
            yield s
            s = s.parent


def sections(path: Path) -> list[Section]:
    """The page's sections in order; the text before the first heading is a section of level 0."""
    out: list[Section] = []
    stack: list[Section] = []
    current: list[tuple[int, str]] = []
    head = (0, "", 0)

    def close():
        level, title, line = head
        parent = next((s for s in reversed(stack) if s.level < level), None)
        section = Section(level, title, line, parent, tuple(current))
        out.append(section)
        while stack and stack[-1].level >= level:
            stack.pop()
        stack.append(section)

    for n, line in prose_lines(path):
        m = HEADING.match(line)
        if m:
            close()
            head, current = (len(m.group(1)), m.group(2), n), []
        else:
            current.append((n, line))
    close()
    return out


def anchors(path: Path) -> set[str]:
    """Every anchor a link may name in this page: its headings' (with GitHub's -1, -2 for repeats) and <a id=...>."""
    seen: dict[str, int] = {}
    out = set()
    for s in sections(path):
        if not s.level:
            continue
        base = slug(s.title)
        k = seen.get(base, 0)
        out.add(base if k == 0 else f"{base}-{k}")
        seen[base] = k + 1
    text = path.read_text(encoding="utf-8")
    out.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    return out


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link and image outside code, a link split over two lines included."""
    lines = prose_lines(path)
    out = []
    for k, (n, line) in enumerate(lines):
        joined = line + (" " + lines[k + 1][1] if k + 1 < len(lines) else "")
        for m in LINK.finditer(joined):
            if m.start() < len(line):
                out.append((n, m.group(1)))
    return out


@dataclass(frozen=True)
class Example:
    """One ``$ command`` of an example block and the lines the document shows it printing."""

    block: Block
    command: str
    expected: tuple[str, ...]


def examples(block: Block) -> list[Example]:
    """The commands of a ``console`` block, continuation lines (ending in a backslash) joined."""
    out: list[Example] = []
    command: list[str] = []
    expected: list[str] = []
    lines = list(block.body)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            if command:
                out.append(Example(block, " ".join(command), tuple(expected)))
            command, expected = [line[2:].rstrip("\\").strip()], []
            while lines[i].rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                command.append(lines[i].rstrip("\\").strip())
        else:
            expected.append(line.rstrip())
        i += 1
    if command:
        out.append(Example(block, " ".join(command), tuple(expected)))
    return out


def block_with_outputs(block: Block, outputs: list[list[str] | None]) -> list[str]:
    """The block's lines with each example's shown output replaced by ``outputs[i]`` (None: kept as written)."""
    out: list[str] = []
    k = -1
    lines = list(block.body)
    i = 0
    while i < len(lines):
        if lines[i].startswith("$ "):
            k += 1
            out.append(lines[i])
            while lines[i].rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                out.append(lines[i])
            shown = []
            while i + 1 < len(lines) and not lines[i + 1].startswith("$ "):
                i += 1
                shown.append(lines[i])
            new = outputs[k] if k < len(outputs) else None
            out.extend(shown if new is None else new)
        else:
            out.append(lines[i])
        i += 1
    return out


def rewrite_block(block: Block, outputs: list[list[str] | None]) -> None:
    """Write ``block`` back into its page with the new outputs (the fences and everything else untouched)."""
    lines = block.path.read_text(encoding="utf-8").splitlines(keepends=True)
    start, end = block.line, block.line + len(block.body)  # 0-based: the body's first line, the closing fence
    new = [line + "\n" for line in block_with_outputs(block, outputs)]
    block.path.write_text("".join(lines[:start] + new + lines[end:]), encoding="utf-8")


def output_matches(expected: tuple[str, ...], actual: list[str]) -> bool:
    """Whether the printed lines are the document's, a ``...`` line standing for any number of lines."""
    actual = [line.rstrip() for line in actual]
    while actual and not actual[-1]:
        actual.pop()

    def match(e: int, a: int) -> bool:
        if e == len(expected):
            return a == len(actual)
        if expected[e].strip() == "...":
            return any(match(e + 1, k) for k in range(a, len(actual) + 1))
        return a < len(actual) and actual[a] == expected[e] and match(e + 1, a + 1)

    return match(0, 0)
