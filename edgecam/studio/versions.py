"""The heads of one drawn region: the candidate a retrain made, the last few used, and which one is in use.

``<state_dir>/models/<camera>/<region>/``: ``candidate.head.npz`` (the newest
retrain, not in use), ``v0001.head.npz``... (heads put in use, the last
:data:`KEEP` kept) and ``current.json`` (``{"history": [1, 2]}``: the versions
put in use, in order; the last is in use, none: the base model's classes).
"Use" makes the candidate the next version; "undo" goes back one step of the
history.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgecam.atomic import write_atomic
from edgecam.model import custom_models

KEEP = 5
CANDIDATE = "candidate" + custom_models.SUFFIX


class Versions:
    """The heads of one region (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def candidate(self) -> Path:
        return self.folder / CANDIDATE

    def path(self, version: int) -> Path:
        return self.folder / f"v{version:04d}{custom_models.SUFFIX}"

    def history(self) -> list[int]:
        try:
            data = json.loads((self.folder / "current.json").read_text(encoding="utf-8"))
            return [int(v) for v in data.get("history", []) if self.path(int(v)).is_file()]
        except (OSError, ValueError, TypeError, AttributeError):
            return []

    def current(self) -> int | None:
        """The version in use; None: none (the region runs its base model's classes)."""
        history = self.history()
        return history[-1] if history else None

    def current_path(self) -> Path | None:
        version = self.current()
        return None if version is None else self.path(version)

    def kept(self) -> list[int]:
        """The versions on disk, oldest first."""
        out = []
        for p in self.folder.glob(f"v*{custom_models.SUFFIX}"):
            digits = p.name[1:-len(custom_models.SUFFIX)]
            if digits.isdigit():
                out.append(int(digits))
        return sorted(out)

    def use_candidate(self) -> int:
        """Make the candidate the next version, in use; its number. FileNotFoundError when there is none."""
        kept = self.kept()
        version = (kept[-1] if kept else 0) + 1
        os.replace(self.candidate, self.path(version))
        history = [v for v in self.history() if v != version] + [version]
        self._write(history)
        for old in kept[:-(KEEP - 1)] if len(kept) >= KEEP else []:
            if old not in history[-1:]:
                self.path(old).unlink(missing_ok=True)
        return version

    def undo(self) -> int | None:
        """Go back to the version used before the current one (None: the base model); LookupError: nothing to undo."""
        history = self.history()
        if not history:
            raise LookupError("nothing to undo: no taught model is in use")
        history.pop()
        self._write(history)
        return history[-1] if history else None

    def _write(self, history: list[int]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / "current.json", json.dumps({"history": history[-50:]}).encode())
