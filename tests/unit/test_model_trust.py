"""Model announcements are not trusted: the checks of model_store.load_version and the follower's rules.

Real files on disk (regular files, symbolic links, a FIFO); no Kafka: the follower's decision
logic (:class:`streamrec.kafka.model_follower._Follower`) is fed decoded announcements directly.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from streamrec.kafka.model_follower import _Follower, refusal_reason
from streamrec.contracts.model_store import (Announcement, ChecksumMismatch, LoadPolicy, ModelRefused, check_signature,
                                   load_version, models_dir, write_version)
from streamrec.settings import Settings

IDS = ["a", "b", "c"]
KEY = "signing-key-for-tests"


def publish(directory: Path, version: int, seed: int = 0) -> Announcement:
    vectors = np.random.default_rng(seed).standard_normal((len(IDS), 4)).astype(np.float32)
    return write_version(directory, version, IDS, vectors, {})


def refusal(announcement: Announcement, policy: LoadPolicy) -> str:
    with pytest.raises(ModelRefused) as info:
        load_version(announcement, policy)
    return info.value.reason


@pytest.fixture
def store(tmp_path):
    directory = tmp_path / "models"
    return directory, LoadPolicy(directory)


def test_a_version_inside_the_models_dir_loads(store):
    directory, policy = store
    assert load_version(publish(directory, 1), policy).item_ids == IDS


def test_paths_outside_the_models_dir_are_refused_even_with_the_right_checksum(store, tmp_path):
    directory, policy = store
    publish(directory, 1)
    outside = publish(tmp_path / "elsewhere", 2)
    assert refusal(outside, policy) == "outside_models_dir"
    # ``..`` that climbs out, a relative path, and a link inside the directory pointing out.
    climbing = dataclasses.replace(outside, path=f"{directory}/../elsewhere/{Path(outside.path).name}")
    assert refusal(climbing, policy) == "outside_models_dir"
    relative = dataclasses.replace(outside, path=os.path.relpath(outside.path))
    assert refusal(relative, policy) == "outside_models_dir"
    link = directory / "model-v000002.safetensors"
    link.symlink_to(outside.path)
    assert refusal(dataclasses.replace(outside, path=str(link)), policy) == "outside_models_dir"
    assert refusal(dataclasses.replace(outside, path=str(directory)), policy) == "outside_models_dir"


@pytest.mark.timeout(20)
def test_a_fifo_is_refused_without_blocking(store):
    directory, policy = store
    real = publish(directory, 1)
    fifo = directory / "model-v000002.safetensors"
    os.mkfifo(fifo)   # no writer ever opens it: reading it would block forever
    assert refusal(dataclasses.replace(real, version=2, path=str(fifo)), policy) == "not_regular_file"


def test_a_directory_or_missing_file_is_refused(store):
    directory, policy = store
    real = publish(directory, 1)
    (directory / "sub").mkdir()
    (directory / "sub" / "x").write_bytes(b"")
    assert refusal(dataclasses.replace(real, path=str(directory / "sub")), policy) == "not_regular_file"
    assert refusal(dataclasses.replace(real, path=str(directory / "gone.safetensors")), policy) == "missing"


def test_files_over_the_size_bound_are_refused(store):
    directory, policy = store
    real = publish(directory, 1)
    size = Path(real.path).stat().st_size
    assert refusal(real, dataclasses.replace(policy, max_bytes=size - 1)) == "too_large"
    assert load_version(real, dataclasses.replace(policy, max_bytes=size)).version == 1


def test_a_read_past_its_deadline_is_refused(store):
    directory, policy = store
    real = publish(directory, 1)
    assert refusal(real, dataclasses.replace(policy, read_timeout_s=-1.0)) == "read_timeout"


def test_checksum_and_announced_version_must_match_the_file(store):
    directory, policy = store
    real = publish(directory, 1)
    with pytest.raises(ChecksumMismatch):
        load_version(dataclasses.replace(real, sha256="0" * 64), policy)
    # A real file (right checksum) announced under a huge version number.
    assert refusal(dataclasses.replace(real, version=10**9), policy) == "version_mismatch"
    # A file in the directory with the announced checksum but not a model at all.
    junk = directory / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    import hashlib
    forged = dataclasses.replace(real, path=str(junk), sha256=hashlib.sha256(junk.read_bytes()).hexdigest())
    assert refusal(forged, policy) == "malformed"


def test_hmac_with_a_key_set():
    ann = Announcement(3, 1.0, "/m/model-v000003.safetensors", "ab" * 32, 3, 4, {"hr@10": 0.25})
    check_signature(ann, None)                     # no key: unsigned accepted
    check_signature(ann.signed(KEY), None)
    check_signature(ann.signed(KEY), KEY)
    assert ann.signed(None) == ann
    decoded = Announcement.decode(ann.signed(KEY).encode())   # survives the wire
    check_signature(decoded, KEY)
    for forged, reason in ((ann, "unsigned"), (ann.signed("another key"), "bad_signature"),
                           (dataclasses.replace(ann.signed(KEY), path="/etc/passwd"), "bad_signature"),
                           (dataclasses.replace(ann.signed(KEY), version=4), "bad_signature"),
                           (dataclasses.replace(ann.signed(KEY), scores={"hr@10": 0.9}), "bad_signature")):
        with pytest.raises(ModelRefused) as info:
            check_signature(forged, KEY)
        assert info.value.reason == reason


def test_signature_is_checked_before_the_file_is_touched(store, tmp_path):
    directory, policy = store
    keyed = dataclasses.replace(policy, signing_key=KEY)
    real = publish(directory, 1)
    assert load_version(real.signed(KEY), keyed).version == 1
    assert refusal(real, keyed) == "unsigned"
    fifo = directory / "fifo"
    os.mkfifo(fifo)
    assert refusal(dataclasses.replace(real, path=str(fifo)), keyed) == "unsigned"


def test_policy_from_settings():
    s = Settings(state_dir=Path("/srv/state"), model_signing_key=KEY, model_max_bytes=123, model_read_timeout_s=4.0)
    assert LoadPolicy.from_settings(s) == LoadPolicy(Path("/srv/state/models"), 123, 4.0, KEY)
    assert models_dir(s) == Path("/srv/state/models")
    assert LoadPolicy.from_settings(Settings(model_signing_key="")).signing_key is None


# --- the follower's rules --------------------------------------------------------------------
class Recorder:
    def __init__(self, refuse_versions=()):
        self.installed: list[int] = []
        self.verified: list[int] = []
        self.errors: list[tuple[int | None, str]] = []
        self.refuse_versions = set(refuse_versions)

    def on_version(self, snapshot, ann) -> bool:
        if ann.version in self.refuse_versions:
            return False
        self.installed.append(snapshot.version)
        return True

    def on_error(self, ann, exc) -> None:
        self.errors.append((ann.version if ann else None, refusal_reason(ann, exc)))

    def follower(self, policy: LoadPolicy) -> _Follower:
        return _Follower(policy, self.on_version, self.on_error, lambda ann: self.verified.append(ann.version),
                         keep_verified=2)


def test_a_refused_huge_version_never_blocks_later_real_versions(store, tmp_path):
    directory, policy = store
    rec = Recorder()
    follower = rec.follower(policy)
    v1 = publish(directory, 1)
    outside = publish(tmp_path / "evil", 10**9)
    bad_checksum = dataclasses.replace(publish(directory, 5), version=10**8, sha256="0" * 64)
    asyncio.run(follower.handle([v1, outside, bad_checksum]))
    assert rec.installed == [1] and follower.current == 1
    assert sorted(rec.errors) == [(10**8, "checksum"), (10**9, "outside_models_dir")]
    v2 = publish(directory, 2)
    asyncio.run(follower.handle([v2]))
    assert rec.installed == [1, 2] and follower.current == 2
    # Re-reading the topic (consumer restart) retries nothing already refused.
    asyncio.run(follower.handle([v1, outside, bad_checksum, v2]))
    assert rec.installed == [1, 2] and len(rec.errors) == 2


def test_older_versions_of_a_batch_are_verified_before_they_become_rollback_targets(store, tmp_path):
    directory, policy = store
    rec = Recorder()
    anns = [publish(directory, v, seed=v) for v in (1, 2, 3, 4)]
    shutil.copy(publish(tmp_path / "evil", 2, seed=99).path, anns[1].path)   # v2's file replaced
    asyncio.run(rec.follower(policy).handle(anns))
    assert rec.installed == [4]
    assert rec.verified == [3, 1]          # newest first, at most keep_verified, v2 refused
    assert rec.errors == [(2, "checksum")]


def test_a_version_the_process_cannot_use_does_not_become_current(store):
    directory, policy = store
    rec = Recorder(refuse_versions={3})
    follower = rec.follower(policy)
    asyncio.run(follower.handle([publish(directory, v) for v in (2, 3)]))
    assert rec.installed == [2] and follower.current == 2
    asyncio.run(follower.handle([publish(directory, 4)]))
    assert rec.installed == [2, 4]
