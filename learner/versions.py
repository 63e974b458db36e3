"""The versions the learner has written: the newest number, and its announcement read back.

A restart must neither reuse a version number nor leave the newest version unannounced (a
kill between writing the file and announcing it): the learner numbers on from
:func:`published_versions` and re-announces :func:`announcement_of` the newest.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from streamrec.contracts.model_store import Announcement


def version_path(directory: Path, version: int) -> Path:
    return directory / f"model-v{version:06d}.safetensors"


def published_versions(directory: Path) -> int:
    """Highest version number among the files in ``directory`` (0 if none).

    >>> published_versions(Path("/nonexistent"))
    0
    """
    best = 0
    for path in directory.glob("model-v*.safetensors"):
        m = re.fullmatch(r"model-v(\d+)\.safetensors", path.name)
        if m:
            best = max(best, int(m.group(1)))
    return best


def announcement_of(directory: Path, version: int) -> Announcement | None:
    """The announcement of a written version, read back from its file (None: no such file)."""
    path = version_path(directory, version)
    if not path.exists():
        return None
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    meta = json.loads(header["__metadata__"]["streamrec"])
    shape = header["item_vectors"]["shape"]
    return Announcement(version, float(meta["created_at"]), str(path.resolve()),
                        hashlib.sha256(data).hexdigest(), int(shape[0]), int(shape[1]),
                        dict(meta.get("scores") or {}))
