"""Published model versions: the safetensors file, its announcement, and loading it safely.

A published version is one safetensors file (tensors only: nothing is unpickled) holding
``item_vectors`` (float32, items x dim, the vectors retrieval and the user vectors use),
the model's own parameters under ``model.*``, and JSON metadata (version, creation time,
item ids, gate scores). It is written to a temporary file, fsynced and renamed, and only
then announced on the compacted topic ``model-updates`` (key ``model``) with its sha256
checksum. A reader verifies the checksum before it uses a single byte, so a half-written
or tampered file is never loaded.

An announcement is not trusted: anyone who can produce to ``model-updates`` can name any path
and any version. A reader therefore loads through a :class:`LoadPolicy` and refuses (with
:class:`ModelRefused`, whose ``reason`` names the check) an announcement whose HMAC is missing
or wrong when a signing key is set, whose path resolves outside the models directory, whose
file is not a regular file (a FIFO would block the reader forever), is larger than the bound
or cannot be read within the time bound, whose checksum differs, or whose file holds another
version than announced (a real file renamed to a huge version number would otherwise block
every later version).

Examples
--------
>>> import tempfile, numpy as np
>>> d = tempfile.mkdtemp()
>>> ann = write_version(d, 1, ["a", "b"], np.eye(2, dtype=np.float32), {})
>>> snap = load_version(ann, LoadPolicy(Path(d)))
>>> snap.version, snap.item_ids
(1, ['a', 'b'])
>>> load_version(ann, LoadPolicy(Path(d), signing_key="k"))  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
ModelRefused: version 1: unsigned announcement, a signing key is set
>>> load_version(ann.signed("k"), LoadPolicy(Path(d), signing_key="k")).version
1
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from streamrec.contracts.signing import UNSIGNED, canonical, sign, signature_problem

MODEL_KEY = b"model"
MODELS_SUBDIR = "models"
READ_CHUNK = 1 << 20


class ModelRefused(ValueError):
    """An announced version that must not be used; ``reason`` is a short metric label."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class ChecksumMismatch(ModelRefused):
    def __init__(self, message: str):
        super().__init__("checksum", message)


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
    hmac: str = ""   # hex HMAC-SHA256 of signing_payload() under STREAMREC_MODEL_SIGNING_KEY; "" unsigned

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "Announcement":
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, d: dict) -> "Announcement":
        """From a decoded announcement (KeyError, TypeError or ValueError when it is none)."""
        return cls(version=int(d["version"]), created_at=float(d["created_at"]), path=str(d["path"]),
                   sha256=str(d["sha256"]), n_items=int(d["n_items"]), dim=int(d["dim"]),
                   scores=dict(d.get("scores") or {}), hmac=str(d.get("hmac") or ""))

    def signing_payload(self) -> bytes:
        """What the HMAC covers: every other field, canonical JSON (:func:`~streamrec.contracts.signing.canonical`)."""
        fields = asdict(self)
        fields.pop("hmac")
        return canonical(fields)

    def signed(self, key: str | None) -> "Announcement":
        """This announcement with its HMAC under ``key``; unchanged when no key is set."""
        return dataclasses.replace(self, hmac=sign(key, self.signing_payload())) if key else self


@dataclass(frozen=True)
class LoadPolicy:
    """What a reader accepts: where model files may be, how big, how long a read may take.

    Parameters
    ----------
    models_dir
        Only files whose resolved path (symbolic links followed) is inside it are read.
    max_bytes
        Larger files are refused before a byte is read.
    read_timeout_s
        A read that takes longer is abandoned and the version refused.
    signing_key
        When set, only announcements carrying a valid HMAC under it are loaded.
    """

    models_dir: Path
    max_bytes: int = 1 << 30
    read_timeout_s: float = 60.0
    signing_key: str | None = None

    @classmethod
    def from_settings(cls, settings) -> "LoadPolicy":
        return cls(models_dir(settings), settings.model_max_bytes, settings.model_read_timeout_s,
                   settings.model_signing_key or None)


def models_dir(settings) -> Path:
    """The one directory published versions are written to and read from."""
    return Path(settings.state_dir) / MODELS_SUBDIR


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


def load_version(announcement: Announcement, policy: LoadPolicy | None = None) -> Snapshot:
    """Check, read and verify an announced version.

    Processes reading ``model-updates`` pass ``LoadPolicy.from_settings(settings)``. Without a
    policy the caller vouches for the path (a tool or test loading what it just wrote): the
    file's own directory counts as the models directory, with the default bounds and no key.

    Raises
    ------
    ModelRefused
        With ``reason`` naming the check that failed (:class:`ChecksumMismatch` for the
        checksum); nothing of the file is used then.
    """
    policy = policy or LoadPolicy(Path(announcement.path).parent)
    check_signature(announcement, policy.signing_key)
    data = read_model_file(announcement.path, policy)
    digest = hashlib.sha256(data).hexdigest()
    if digest != announcement.sha256:
        raise ChecksumMismatch(f"{announcement.path}: sha256 {digest[:12]}… != announced "
                               f"{announcement.sha256[:12]}…")
    try:
        tensors = st_load(data)
        meta = json.loads(_metadata(data)["streamrec"])
        vectors = tensors.pop("item_vectors")
        version = int(meta["version"])
    except Exception as exc:   # checksum right, content not ours: a file someone else wrote
        raise ModelRefused("malformed", f"{announcement.path}: not a streamrec model file: {exc}") from None
    if version != announcement.version:
        raise ModelRefused("version_mismatch", f"{announcement.path} holds version {version}, "
                                               f"announced as {announcement.version}")
    return Snapshot(version, float(meta["created_at"]), list(meta["item_ids"]), vectors,
                    {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, meta)


def check_signature(announcement: Announcement, key: str | None) -> None:
    """Refuse ``announcement`` unless it carries a valid HMAC under ``key`` (no key: accept)."""
    problem = signature_problem(key, announcement.signing_payload(), announcement.hmac)
    if problem == UNSIGNED:
        raise ModelRefused(problem, f"version {announcement.version}: unsigned announcement, a signing key is set")
    if problem is not None:
        raise ModelRefused(problem, f"version {announcement.version}: announcement HMAC does not match the "
                                    "signing key")


def resolve_in_models_dir(path: str, directory: Path) -> Path:
    """``path`` resolved (links followed); refused unless absolute and inside ``directory``."""
    candidate = Path(path)
    root = Path(directory).resolve()
    resolved = candidate.resolve()
    if not candidate.is_absolute() or root not in resolved.parents:
        raise ModelRefused("outside_models_dir", f"{path}: not inside the models directory {root}")
    return resolved


def check_file_status(st: os.stat_result, path: Path, max_bytes: int) -> None:
    """Refuse anything but a regular file of at most ``max_bytes``."""
    if not stat.S_ISREG(st.st_mode):
        raise ModelRefused("not_regular_file", f"{path}: not a regular file")
    if st.st_size > max_bytes:
        raise ModelRefused("too_large", f"{path}: {st.st_size} bytes > STREAMREC_MODEL_MAX_BYTES {max_bytes}")


def read_model_file(path: str, policy: LoadPolicy) -> bytes:
    """The bytes of an announced file, read only if it passes every check of ``policy``.

    The type is checked before opening (opening a FIFO for reading blocks until a writer
    appears) and again on the open descriptor, which is opened without following a link and
    non-blocking, so a file swapped for a FIFO or link between the two checks is refused too.
    """
    resolved = resolve_in_models_dir(path, policy.models_dir)
    try:
        before = os.lstat(resolved)
        check_file_status(before, resolved, policy.max_bytes)
        fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ModelRefused("missing", f"{resolved}: no such file") from None
    except OSError as exc:
        raise ModelRefused("unreadable", f"{resolved}: {exc}") from None
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise ModelRefused("replaced", f"{resolved}: replaced while being opened")
        check_file_status(st, resolved, policy.max_bytes)
        return _read_bounded(fd, resolved, policy.max_bytes, time.monotonic() + policy.read_timeout_s)
    except OSError as exc:
        raise ModelRefused("unreadable", f"{resolved}: {exc}") from None
    finally:
        os.close(fd)


def _read_bounded(fd: int, path: Path, max_bytes: int, deadline: float) -> bytes:
    chunks, total = [], 0
    while True:
        if time.monotonic() > deadline:
            raise ModelRefused("read_timeout", f"{path}: not read within STREAMREC_MODEL_READ_TIMEOUT_S")
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:   # grew after the size check
            raise ModelRefused("too_large", f"{path}: more than STREAMREC_MODEL_MAX_BYTES {max_bytes} bytes")
        chunks.append(chunk)


def _metadata(data: bytes) -> dict[str, str]:
    header_len = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + header_len]).get("__metadata__", {})
