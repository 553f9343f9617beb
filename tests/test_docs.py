"""The README and docs/*.md keep their promises: links resolve, figures name their CPU, command blocks say if they run.

The examples themselves are run by tests/e2e/test_doc_examples.py; the parsing is tests/docs.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import (COMMENT, REPO, Block, anchors, blocks, documents, examples, links, output_matches, rel,
                        sections, slug)

README_MAX_LINES = 250
# A figure of time, rate or size: what depends on the machine that measured it.
FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ms|µs|fps|frames/s|s|min|minutes?|seconds?|hours?|[KMG]B)(?![\w/])"
                    r"|(?<![\w.])\d+(?:\.\d+)?x (?:faster|slower)")
# "Measured on: AMD EPYC ..." (a CPU named), or a comment saying why the section's figures are not measurements.
CPU = re.compile(r"AMD|EPYC|Intel|Xeon|Cortex|Raspberry Pi|BCM27|Arm|ARM")
MEASURED = re.compile(r"^\W*Measured on\W*:")
NOT_MEASURED = re.compile(r"^\s*<!--\s*not measured:\s*\S.*-->\s*$")
INLINE = re.compile(r"measured on", re.I)


def test_anchors_are_githubs():
    assert slug("Running as a service (systemd)") == "running-as-a-service-systemd"
    assert slug("Threads: auto") == "threads-auto"
    assert slug("Which model?") == "which-model"
    assert slug("What `make install` does there, and why") == "what-make-install-does-there-and-why"
    assert slug("Trying the Pi instructions: make check-pi") == "trying-the-pi-instructions-make-check-pi"


def broken_links(doc: Path) -> list[str]:
    """Relative links of ``doc`` whose file, or whose heading in a Markdown file, does not exist."""
    broken = []
    for line, target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{rel(doc)}:{line}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{rel(doc)}:{line}: {target}: no heading #{anchor} in {rel(dest)}")
    return broken


@pytest.mark.parametrize("doc", documents(), ids=rel)
def test_every_relative_link_and_anchor_resolves(doc: Path):
    broken = broken_links(doc)
    assert not broken, "\n".join(broken)


def test_the_link_check_finds_a_broken_link_and_anchor(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## The `x` part\n")
    page.write_text("# Title\n\nSee [there](missing.md), [here](#title), [nowhere](#no-such)\n"
                    "and [split\nover lines](other.md#the-x-part), [bad](other.md#x).\n\n"
                    "```sh\n[not a link](in-code.md)\n```\n")
    assert links(page) == [(3, "missing.md"), (3, "#title"), (3, "#no-such"), (4, "other.md#the-x-part"),
                           (5, "other.md#x")]
    assert broken_links(page) == [f"{page}:3: missing.md: no such file",
                                  f"{page}:3: #no-such: no heading #no-such in {page}",
                                  f"{page}:5: other.md#x: no heading #x in {tmp_path / 'other.md'}"]


def test_the_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def test_the_readme_lists_every_page_of_docs():
    readme = {target for _, target in links(REPO / "README.md")}
    missing = [rel(p) for p in documents()[1:] if rel(p) not in readme]
    assert not missing, f"pages of docs/ not in the README's table of documents: {missing}"


def marker_problem(block: Block) -> str | None:
    """Why a command block's marker is not acceptable, or None."""
    marker = block.marker
    if marker == "example":
        if block.lang != "console":
            return "an example to run must be a ```console block of '$ ' commands"
        if not examples(block):
            return "an example block with no '$ ' command"
        return None
    if marker.startswith("not run:") and len(marker) > len("not run:") + 3:
        return None
    if marker.startswith("check-pi:"):
        return None
    return ("a command block needs <!-- example --> (a test runs it) or <!-- not run: REASON --> on the line before "
            f"it; found {marker!r}")


@pytest.mark.parametrize("doc", documents(), ids=rel)
def test_every_command_block_says_whether_a_test_runs_it(doc: Path):
    problems = [f"{b.where}: {why}" for b in blocks(doc) if b.is_command and (why := marker_problem(b))]
    assert not problems, "\n".join(problems)


def test_a_command_block_without_a_marker_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# T\n\n```sh\nmake run\n```\n\n<!-- example -->\n```sh\nedgecam run\n```\n\n"
                    "<!-- not run: needs a camera -->\n```sh\nedgecam run\n```\n\n"
                    "<!-- example -->\n```console\n$ edgecam models list \\\n    --json\nprinted\n```\n")
    found = [marker_problem(b) for b in blocks(page)]
    assert found[0] and "needs <!-- example -->" in found[0]
    assert found[1] and "console" in found[1]
    assert found[2] is None and found[3] is None
    (ex,) = examples(blocks(page)[3])
    assert ex.command == "edgecam models list --json" and ex.expected == ("printed",)


def test_printed_output_is_compared_line_by_line_with_ellipsis():
    assert output_matches(("a", "...", "d"), ["a", "b", "c", "d", ""])
    assert output_matches(("a", "b"), ["a", "b  "])
    assert not output_matches(("a", "b"), ["a", "c"])
    assert not output_matches(("a",), ["a", "extra"])
    assert output_matches(("...",), ["anything", "at all"])


def unmeasured_figures(doc: Path) -> list[str]:
    """Figures of time, rate or size in a section where neither it nor a section above names a CPU or says why not."""
    out = []
    secs = sections(doc)
    raw = doc.read_text(encoding="utf-8").splitlines()

    def vouched(section) -> bool:
        text = [line for _, line in section.lines]
        comments = [raw[n - 1] for n, _ in section.lines]
        return (any(MEASURED.match(line) and CPU.search(line) for line in text)
                or any(NOT_MEASURED.search(line) for line in comments))

    for section in secs:
        if any(vouched(s) for s in section.chain()):
            continue
        for n, line in section.lines:
            prose = COMMENT.sub("", line)
            m = FIGURE.search(prose)
            if m and not (INLINE.search(prose) and CPU.search(prose)):
                out.append(f"{rel(doc)}:{n}: {m.group(0)!r} under '{section.title or '(top)'}': {prose.strip()[:100]}")
    return out


@pytest.mark.parametrize("doc", documents(), ids=rel)
def test_every_figure_names_the_cpu_it_was_measured_on(doc: Path):
    found = unmeasured_figures(doc)
    assert not found, ("figures with no 'Measured on: <CPU> ...' line in their section (or a section above), nor a "
                       "'<!-- not measured: why -->' comment:\n" + "\n".join(found))


def test_a_figure_without_its_cpu_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Speed\n\nThe fast suite takes about 40 s.\n\n## Measured\n\nMeasured on: AMD EPYC, 2 cores.\n\n"
                    "| a | 7 ms |\n\n### Below it\n\n3.5 fps\n\n## Settings\n\n<!-- not measured: defaults -->\n"
                    "waits 5 s\n\n## Other\n\nno figure: 12 photos, `timeout_s: 5 s`; 3 ms (measured on a Xeon)\n"
                    "`<!-- not measured: inline code is no marker -->` 4 ms\n")
    assert unmeasured_figures(page) == [f"{page}:3: '40 s' under 'Speed': The fast suite takes about 40 s.",
                                        f"{page}:23: '4 ms' under 'Other': `` 4 ms"]


def test_a_block_is_written_back_with_new_outputs(tmp_path):
    from tests.docs import rewrite_block

    page = tmp_path / "page.md"
    page.write_text("# T\n\n<!-- example -->\n```console\n$ one \\\n  --flag\nold 1\nold 2\n$ two\n...\n"
                    "$ three\n```\n\nafter\n")
    (block,) = blocks(page)
    rewrite_block(block, [["new 1"], None, ["printed"]])
    assert page.read_text() == ("# T\n\n<!-- example -->\n```console\n$ one \\\n  --flag\nnew 1\n$ two\n...\n"
                                "$ three\nprinted\n```\n\nafter\n")
