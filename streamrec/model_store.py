"""Published model versions: the safetensors file, its announcement, and loading it safely.

A published version is one safetensors file (tensors only: nothing is unpickled) holding
``item_vectors`` (float32, items x dim, the vectors retrieval and the user vectors use),
the model's own parameters under ``model.*``, and JSON metadata (version, creation time,
item ids, gate scores). It is written to a temporary file, fsynced and renamed, and only
then announced on the compacted topic ``model-updates`` (key ``model``) with its sha256
checksum. A reader verifies the checksum before it uses a single byte, so a half-written
or tampered file is never loaded.

Examples
--------
>>> import tempfile, numpy as np
>>> d = tempfile.mkdtemp()
>>> ann = write_version(d, 1, ["a", "b"], np.eye(2, dtype=np.float32), {})
>>> snap = load_version(ann)
>>> snap.version, snap.item_ids
(1, ['a', 'b'])
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

MODEL_KEY = b"model"


class ChecksumMismatch(ValueError):
    pass


@dataclass(frozen=True)
class Announcement:
    """The value on ``model-updates``: where a version is and how to verify it."""

    version: int
    created_at: float
    path: str
    sha256: str
    n_items: int
    dim: int
    scores: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "Announcement":
        d = json.loads(raw)
        return cls(version=int(d["version"]), created_at=float(d["created_at"]), path=str(d["path"]),
                   sha256=str(d["sha256"]), n_items=int(d["n_items"]), dim=int(d["dim"]),
                   scores=dict(d.get("scores") or {}))


@dataclass
class Snapshot:
    """A loaded, verified version."""

    version: int
    created_at: float
    item_ids: list[str]
    item_vectors: np.ndarray
    tensors: dict[str, np.ndarray]   # the model's parameters, "model." prefix stripped
    metadata: dict[str, Any]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Fault-injection hook for the crash tests (``streamrec chaos learner``): seconds to wait
# between writing a file's temporary copy and renaming it, so a kill can land in that window.
# Unset (the default) it does nothing.
FAULT_WRITE_DELAY_ENV = "STREAMREC_FAULT_WRITE_DELAY_S"


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    delay = float(os.environ.get(FAULT_WRITE_DELAY_ENV) or 0)
    if delay > 0:
        time.sleep(delay)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary copies :func:`atomic_write` left in ``directory`` when killed.

    A kill between writing a temporary copy and renaming it leaves ``.<name>.tmp-<pid>``
    behind (the target keeps its previous content). Call it only from the directory's single
    writer, before it writes anything: another live writer's temporary would be deleted too.
    """
    directory = Path(directory)
    stale = sorted(directory.glob(".*.tmp-*")) if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_version(directory: str | Path, version: int, item_ids: list[str], item_vectors: np.ndarray,
                  model_tensors: Mapping[str, np.ndarray], scores: dict[str, Any] | None = None,
                  extra_metadata: dict[str, Any] | None = None) -> Announcement:
    """Write version ``version`` atomically and return its announcement (not yet sent)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
    if item_vectors.shape[0] != len(item_ids):
        raise ValueError("one vector per item id")
    created = time.time()
    meta = {"version": version, "created_at": created, "item_ids": item_ids,
            "scores": scores or {}, **(extra_metadata or {})}
    tensors = {"item_vectors": item_vectors}
    tensors.update({f"model.{k}": np.ascontiguousarray(v) for k, v in model_tensors.items()})
    data = st_save(tensors, metadata={"streamrec": json.dumps(meta)})
    path = directory / f"model-v{version:06d}.safetensors"
    atomic_write(path, data)
    return Announcement(version, created, str(path.resolve()), hashlib.sha256(data).hexdigest(),
                        len(item_ids), int(item_vectors.shape[1]), scores or {})


def load_version(announcement: Announcement) -> Snapshot:
    """Read and verify an announced version; raises :class:`ChecksumMismatch` if it differs."""
    data = Path(announcement.path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != announcement.sha256:
        raise ChecksumMismatch(f"{announcement.path}: sha256 {digest[:12]}… != announced "
                               f"{announcement.sha256[:12]}…")
    tensors = st_load(data)
    meta = json.loads(_metadata(data)["streamrec"])
    vectors = tensors.pop("item_vectors")
    return Snapshot(int(meta["version"]), float(meta["created_at"]), list(meta["item_ids"]), vectors,
                    {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, meta)


def _metadata(data: bytes) -> dict[str, str]:
    header_len = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + header_len]).get("__metadata__", {})
