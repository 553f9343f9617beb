"""The README's and docs' examples, run: each ``$ `` line of a block marked ``<!-- example -->`` (tests/docs.py).

A command must exit 0 and, where the document shows what it prints, print
exactly that (``...`` stands for any lines): so a printed example that fails,
or whose figures went stale, fails here. Commands run in the repository's
folder, as a reader would type them, with ``edgecam`` on the PATH (this
checkout, this Python), the model cache filled from ``../shared`` and the
shared mirror set; blocks that need a camera, root or minutes are marked
``<!-- not run: why -->`` instead (tests/test_docs.py checks that every
command block is one or the other).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import pytest

from tests.conftest import REPO, SHARED
from tests.docs import Example, blocks, documents, examples, output_matches, rewrite_block

EXAMPLES = [ex for doc in documents() for b in blocks(doc) if b.marker == "example" for ex in examples(b)]
TIMEOUT_S = 120
UPDATE = os.environ.get("EDGECAM_UPDATE_DOC_EXAMPLES") == "1"


@pytest.fixture(scope="module")
def doc_env(tmp_path_factory, model_cache, shared_dir) -> dict:
    """The environment of a reader who installed edgecam: ``edgecam`` on the PATH, models cached, the mirror set."""
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "edgecam"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m edgecam \"$@\"\n")
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "EDGECAM_CONFIG"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
               EDGECAM_MODEL_DIR=str(model_cache),
               EDGECAM_MODEL_MIRROR=f"{shared_dir / 'models'}{os.pathsep}{shared_dir / 'images'}")
    return env


def run(example: Example, env: dict) -> subprocess.CompletedProcess:
    """The example's command as the document writes it, in the repository's folder."""
    command = example.command
    if SHARED != (REPO.parent / "shared").resolve():  # the docs say ../shared: the reader's layout
        command = command.replace("../shared", str(SHARED))
    return subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def run_example(example: Example, env: dict) -> str | None:
    """Run one example as the document writes it; None when it did what the document says, else why not."""
    proc = run(example, env)
    where = f"{example.block.where}: $ {example.command}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["(nothing printed)"])[-1]
        return f"{where}\nexited {proc.returncode}: {last}"
    if example.expected and not output_matches(example.expected, proc.stdout.splitlines()):
        return (f"{where}\nprinted other lines than the document shows; it printed:\n{proc.stdout}"
                f"the document shows:\n" + "\n".join(example.expected))
    return None


@pytest.mark.skipif(UPDATE, reason="EDGECAM_UPDATE_DOC_EXAMPLES=1: writing the outputs instead")
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda ex: f"{ex.block.where}:{ex.command.split()[1]}")
def test_the_documented_example_does_what_the_document_says(example: Example, doc_env):
    problem = run_example(example, doc_env)
    assert problem is None, problem


def test_there_are_examples_to_run():
    # the README's table of documents points at pages whose commands are run here: at least the cheap ones
    commands = {ex.command.split()[1] for ex in EXAMPLES}
    assert {"classify", "eval", "check-config", "bench"} <= commands, commands


def test_a_failing_or_stale_example_is_reported(doc_env, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- example -->\n```console\n$ edgecam classify no-such-photo.jpg\n```\n\n"
                    "<!-- example -->\n```console\n$ edgecam check-config config.yaml\nconfig.yaml: fine\n```\n\n"
                    "<!-- example -->\n```console\n$ edgecam check-config config.yaml\n...\n```\n")
    failing, stale, fine = (ex for b in blocks(page) for ex in examples(b))
    problem = run_example(failing, doc_env)
    assert problem is not None and "\nexited " in problem and "no-such-photo.jpg" in problem, problem
    assert "printed other lines" in run_example(stale, doc_env)
    assert run_example(fine, doc_env) is None


@pytest.mark.skipif(not UPDATE, reason="set EDGECAM_UPDATE_DOC_EXAMPLES=1 to write the examples' outputs into the docs")
def test_update_the_printed_outputs(doc_env):
    """Each example block's shown output becomes what its commands print now (an output shown as ``...`` stays)."""
    marked = [b for doc in documents() for b in blocks(doc) if b.marker == "example"]
    for block in sorted(marked, key=lambda b: (str(b.path), -b.line)):  # bottom-up: line numbers stay valid
        outputs = []
        for ex in examples(block):
            proc = run(ex, doc_env)
            assert proc.returncode == 0, \
                f"{block.where}: $ {ex.command}: exited {proc.returncode}: {proc.stderr[-500:]}"
            keep = not ex.expected or any(line.strip() == "..." for line in ex.expected)
            outputs.append(None if keep else [line.rstrip() for line in proc.stdout.rstrip("\n").splitlines()])
        rewrite_block(block, outputs)
