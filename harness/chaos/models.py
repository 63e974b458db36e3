"""Forged model announcements against real serving and streams processes.

``streamrec chaos forged-models``: serving and a streams worker run as child processes with a
signing key set; a real signed version 1 is published, then, while clients keep asking for
recommendations, one forged announcement of each kind (:func:`forgeries`) lands on
``model-updates``, and finally a real signed version 2. Every forged announcement carries a
version number above every real one, so a forged version accepted, or a refused one taken as
the current version, would show as a version other than 1 and 2 being served or as version 2
never arriving.

The row (one of the ``streamrec chaos`` table) counts forged announcements as
``faults_injected`` and failed recommendation calls as ``requests_failed``; ``details`` has
what each process did: versions answered with, refusals by reason, the rollback list, whether
``/readyz`` ever answered other than 200, and ``violations`` (empty when every guarantee
held; the integration test asserts on the same row).
"""
from __future__ import annotations

import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from harness.chaos.serving import N_ITEMS, _Outcomes, seed_topics
from streamrec.client import RecClient
from streamrec.kafka.config import producer_config
from harness.metrics_scrape import Scrape
from streamrec.contracts.model_store import MODEL_KEY, Announcement, models_dir, write_version
from harness.polling import wait_or_fail
from harness.processes import Proc
from streamrec.settings import Settings
from streamrec.contracts.topics import MODEL_UPDATES

FORGED_VERSION = 1_000_000   # above any real version of the scenario: forged ones would win if taken
MAX_MODEL_BYTES = 4 << 20    # the scenario's STREAMREC_MODEL_MAX_BYTES: the oversized forgery exceeds it


def _vectors(dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((N_ITEMS, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def publish_version(settings: Settings, version: int, seed: int) -> Announcement:
    """Write a real version into the models directory and return its signed announcement."""
    ann = write_version(models_dir(settings), version, [str(i) for i in range(N_ITEMS)],
                        _vectors(settings.vector_dim, seed), {})
    return ann.signed(settings.model_signing_key)


def forgeries(settings: Settings, real: Announcement, scratch: Path) -> list[tuple[str, bytes]]:
    """One forged announcement per kind: ``(expected refusal reason, message value)``.

    All but the unsigned and wrongly signed ones are signed with the real key, so each is
    refused by the check it targets, not by the signature.
    """
    key, models, dim = settings.model_signing_key, models_dir(settings).resolve(), settings.vector_dim
    ids = [str(i) for i in range(N_ITEMS)]
    v = iter(range(FORGED_VERSION, FORGED_VERSION + 100))
    outside = write_version(scratch / "evil", next(v), ids, _vectors(dim, 666), {})   # right checksum
    link = models / f"model-v{outside.version:07d}-link.safetensors"
    link.symlink_to(outside.path)
    fifo = models / "model-fifo.safetensors"
    os.mkfifo(fifo)                     # nobody writes to it: a blocking read would never return
    huge = models / "model-huge.safetensors"
    with open(huge, "wb") as fh:
        fh.truncate(settings.model_max_bytes + 1)   # sparse: costs no disk
    inside = write_version(models, next(v), ids, _vectors(dim, 667), {})   # a real-looking file
    cases = [
        ("outside_models_dir", outside.signed(key)),
        ("outside_models_dir", Announcement(next(v), time.time(), str(link), outside.sha256, N_ITEMS, dim).signed(key)),
        ("not_regular_file", Announcement(next(v), time.time(), str(fifo), "0" * 64, N_ITEMS, dim).signed(key)),
        ("too_large", Announcement(next(v), time.time(), str(huge), "0" * 64, N_ITEMS, dim).signed(key)),
        ("unsigned", inside),
        ("bad_signature", inside.signed(key + "-guessed")),
        ("checksum", Announcement(next(v), time.time(), real.path, "0" * 64, N_ITEMS, dim).signed(key)),
        ("version_mismatch", Announcement(next(v), time.time(), real.path, real.sha256, N_ITEMS, dim).signed(key)),
    ]
    return [(reason, ann.encode()) for reason, ann in cases] + [("undecodable", b"{not an announcement")]


def _produce(producer: Producer, settings: Settings, value: bytes) -> None:
    producer.produce(settings.topic(MODEL_UPDATES), key=MODEL_KEY, value=value)
    if producer.flush(10) != 0:
        raise RuntimeError("announcement not acknowledged by the broker")


def _get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method,
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _by_label(proc: Proc, name: str, label: str) -> dict[str, float]:
    samples = Scrape.from_text(proc.command, proc.url, proc.metrics()).samples.get(name, [])
    return {labels[label]: value for labels, value in samples if value}


def _gauge(proc: Proc, name: str) -> float:
    return sum(v for _, v in Scrape.from_text(proc.command, proc.url, proc.metrics()).samples.get(name, []))


def _wait(predicate, timeout: float, what: str) -> None:
    """:func:`wait_or_fail`, counting a predicate that fails to read a process as not yet."""
    def tolerant() -> bool:
        try:
            return predicate()
        except (OSError, ValueError):   # a process still starting
            return False
    wait_or_fail(tolerant, timeout, what, interval=0.2)


class _Watch:
    """Clients calling serving, and a ``/readyz`` poller, in threads until stopped."""

    def __init__(self, url: str, users: list[str], clients: int, timeout: float = 5.0):
        self.url, self.users = url, users
        self.outcomes = _Outcomes(timeout)
        self.versions: set[int] = set()
        self.readyz: dict[int, int] = {}
        self.stop = threading.Event()
        self._client = RecClient(url, timeout=timeout)
        self.threads = [threading.Thread(target=self._call_loop, args=(n,), daemon=True) for n in range(clients)]
        self.threads.append(threading.Thread(target=self._ready_loop, daemon=True))

    def _call_loop(self, n: int) -> None:
        i = n
        while not self.stop.is_set():
            def one() -> None:
                self.versions.add(int(self._client.recommend(self.users[i % len(self.users)], k=5)["model_version"]))
            self.outcomes.call(one)
            i += 1
            time.sleep(0.01)

    def _ready_loop(self) -> None:
        while not self.stop.is_set():
            try:
                status, _ = _get(self.url + "/readyz")
            except OSError:
                status = 0
            self.readyz[status] = self.readyz.get(status, 0) + 1
            time.sleep(0.1)

    def __enter__(self) -> "_Watch":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def forged_models(settings: Settings, *, with_streams: bool = True, clients: int = 2,
                  ready_timeout: float = 120.0, settle_s: float = 2.0) -> dict:
    """Run the scenario on the broker of ``settings``; returns the chaos row (see module doc)."""
    token = secrets.token_hex(16)
    s = settings.replace(model_signing_key=secrets.token_hex(32), serving_admin_token=token,
                         model_max_bytes=MAX_MODEL_BYTES)
    users = seed_topics(s)
    producer = Producer(producer_config(s, **{"linger.ms": 0}))
    v1 = publish_version(s, 1, seed=1)
    _produce(producer, s, v1.encode())
    procs = [Proc("serve", s, "http_port")] + ([Proc("streams", s, "streams_web_port")] if with_streams else [])
    try:
        for proc in procs:
            proc.start()
        serving, streams = procs[0], (procs[1] if with_streams else None)
        for proc in procs:
            proc.wait_ready(ready_timeout)
        _wait(lambda: _get(serving.url + "/admin/models", token)[1]["serving"]["version"] == 1, ready_timeout,
              "serving on version 1")
        with _Watch(serving.url, users, clients) as watch:
            time.sleep(settle_s)
            cases = forgeries(s, v1, Path(s.state_dir) / "forgery-scratch")
            for _, value in cases:
                _produce(producer, s, value)
            v2 = publish_version(s, 2, seed=2)
            _produce(producer, s, v2.encode())
            _wait(lambda: _get(serving.url + "/admin/models", token)[1]["serving"]["version"] == 2, ready_timeout,
                  "serving on version 2")
            if streams is not None:
                _wait(lambda: _gauge(streams, "streamrec_streams_model_version") == 2, ready_timeout,
                      "streams on version 2")
            time.sleep(settle_s)
        refused = {"serving": _by_label(serving, "streamrec_serving_model_load_errors_total", "reason")}
        if streams is not None:
            refused["streams"] = _by_label(streams, "streamrec_streams_model_refused_total", "reason")
        streams_version = _gauge(streams, "streamrec_streams_model_version") if streams is not None else None
        _, listing = _get(serving.url + "/admin/models", token)
        reload_status, reloaded = _get(serving.url + "/admin/reload", token, "POST")
        ready_after, _ = _get(serving.url + "/readyz")
        alive = all(p.process.poll() is None for p in procs)
    finally:
        for proc in procs:
            proc.stop()
    details = {
        "versions_answered": sorted(watch.versions),
        "streams_version": streams_version,
        "rollback_list": [a["version"] for a in listing["announced"]],
        "reload": {"status": reload_status, "version": reloaded.get("serving", {}).get("version")},
        "readyz_during": watch.readyz, "readyz_after": ready_after, "processes_alive": alive,
        "forged": [reason for reason, _ in cases], "refused": refused,
        "client_errors": dict(watch.outcomes.counts), "examples": watch.outcomes.examples,
    }
    details["violations"] = _violations(details, with_streams)
    c = watch.outcomes.counts
    row = {"scenario": "forged model announcements", "faults_injected": len(cases),
           "requests_sent": c["ok"] + c["timeout"] + c["unavailable"] + c["unclear"], "requests_ok": c["ok"],
           "requests_failed": c["timeout"] + c["unavailable"] + c["unclear"], "details": details}
    if details["violations"]:
        row["error"] = "; ".join(details["violations"])
    return row


def _violations(d: dict, with_streams: bool) -> list[str]:
    """Every guarantee of the scenario that did not hold, in words (empty: all held)."""
    out = []
    if not set(d["versions_answered"]) <= {1, 2}:
        out.append(f"answered with versions {d['versions_answered']} (only 1 and 2 are real)")
    if with_streams and d["streams_version"] != 2:
        out.append(f"streams on version {d['streams_version']}, expected 2")
    if d["rollback_list"] != [1, 2]:
        out.append(f"rollback list {d['rollback_list']} != [1, 2]")
    if d["reload"] != {"status": 200, "version": 2}:
        out.append(f"reload gave {d['reload']}, expected version 2")
    if set(d["readyz_during"]) != {200} or d["readyz_after"] != 200 or not d["processes_alive"]:
        out.append(f"readiness {d['readyz_during']} then {d['readyz_after']}, alive {d['processes_alive']}")
    expected = {}
    for reason in d["forged"]:
        expected[reason] = expected.get(reason, 0) + 1
    for process, counts in d["refused"].items():
        if counts != expected:
            out.append(f"{process} refused {counts}, expected {expected}")
    if d["client_errors"].get("ok", 0) == 0 or set(d["client_errors"]) - {"ok"}:
        out.append(f"client calls {d['client_errors']}")
    return out


def run_forged(settings: Settings, args=None) -> dict:
    """``streamrec chaos forged-models``."""
    started = time.monotonic()
    row = forged_models(settings.replace(topic_prefix=f"chaos-forged-{int(time.time())}-",
                                         state_dir=Path(settings.state_dir) / f"forged-{int(time.time())}"))
    return {**row, "seconds": round(time.monotonic() - started, 1)}
