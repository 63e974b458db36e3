"""Follow ``model-updates`` and hand each verified version to a callback.

Every process that needs the newest model (streams, serving) runs one of these: an aiokafka
consumer with no group (each process must see every version), reading the single-partition
compacted topic from the beginning. Loading and verification run in a thread so the event
loop keeps serving, and are abandoned after a bounded time.

Announcements are not trusted (anyone who can produce to the topic can write one): each is
loaded through :class:`~streamrec.contracts.model_store.LoadPolicy` (models directory only, regular
files only, size and time bounds, HMAC when a signing key is set, checksum, the file's own
version). A refused announcement is reported and remembered, never becomes the version the
follower compares newer ones against, and is never tried again, so a forged announcement
with a huge version number cannot hold back the real versions that follow it. When the
newest announcement of a batch is refused, the next newest is tried.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from aiokafka import AIOKafkaConsumer

from streamrec.kafka.config import aiokafka_config
from streamrec.contracts.model_store import Announcement, LoadPolicy, ModelRefused, Snapshot, load_version
from streamrec.settings import Settings
from streamrec.contracts.topics import MODEL_UPDATES

log = logging.getLogger(__name__)

# on_version may return False: the process could not use the version (it stays refused).
OnVersion = Callable[[Snapshot, Announcement], Awaitable[bool | None] | bool | None]
OnError = Callable[[Announcement | None, Exception], None]

# Beyond the read's own deadline: checksum and parsing, and a read stuck inside one system call
# (a hung network file system), which only abandoning the thread can get out of.
LOAD_SLACK_S = 30.0
# Rollback targets worth verifying when a batch holds several versions (start-up backlog).
KEEP_VERIFIED = 4
# Refused announcements remembered (so a re-read after a consumer restart does not retry them).
MAX_REFUSED = 1000


def refusal_reason(announcement: Announcement | None, exc: Exception) -> str:
    """The metric label of a refusal: the failed check, else ``undecodable`` or ``load``."""
    if isinstance(exc, ModelRefused):
        return exc.reason
    return "undecodable" if announcement is None else "load"


async def load_announced(announcement: Announcement, policy: LoadPolicy) -> Snapshot:
    """:func:`~streamrec.contracts.model_store.load_version` in a worker thread, with a time bound.

    Raises
    ------
    ModelRefused
        ``read_timeout`` when the thread has not finished in time (it is abandoned, the
        event loop and later loads go on), or whatever check refused the announcement.
    """
    future = asyncio.get_running_loop().run_in_executor(None, load_version, announcement, policy)
    try:
        return await asyncio.wait_for(future, policy.read_timeout_s + LOAD_SLACK_S)
    except asyncio.TimeoutError:
        raise ModelRefused("read_timeout", f"{announcement.path}: not loaded within "
                                           f"{policy.read_timeout_s + LOAD_SLACK_S:.0f}s") from None


class _Follower:
    """What the follower remembers between batches: the version in use and the refusals."""

    def __init__(self, policy: LoadPolicy, on_version: OnVersion, on_error: OnError | None,
                 on_verified: Callable[[Announcement], None] | None, keep_verified: int):
        self.policy = policy
        self.on_version = on_version
        self.on_error = on_error
        self.on_verified = on_verified
        self.keep_verified = keep_verified
        self.current = 0
        self.refused: dict[bytes, int] = {}   # encoded announcement -> version

    async def handle(self, announcements: list[Announcement]) -> None:
        """Install the newest usable announcement; verify a few older ones as rollback targets."""
        fresh = [a for a in announcements if a.version > self.current and a.encode() not in self.refused]
        fresh.sort(key=lambda a: a.version, reverse=True)
        installed: Announcement | None = None
        verified = 0
        for ann in fresh:
            if installed is None:
                if await self._install(ann):
                    installed = ann
            elif self.on_verified and ann.version < installed.version and verified < self.keep_verified:
                if await self._load(ann) is not None:
                    self.on_verified(ann)
                    verified += 1
        if installed is not None:
            self.current = installed.version
            self.refused = {k: v for k, v in self.refused.items() if v > self.current}

    async def _install(self, ann: Announcement) -> bool:
        snapshot = await self._load(ann)
        if snapshot is None:
            return False
        result = self.on_version(snapshot, ann)
        if asyncio.iscoroutine(result):
            result = await result
        if result is False:   # on_version reported why itself
            self._remember_refused(ann)
            return False
        return True

    async def _load(self, ann: Announcement) -> Snapshot | None:
        try:
            return await load_announced(ann, self.policy)
        except Exception as exc:
            self._remember_refused(ann)
            self.report(ann, exc)
            return None

    def _remember_refused(self, ann: Announcement) -> None:
        if len(self.refused) >= MAX_REFUSED:
            self.refused.pop(next(iter(self.refused)))
        self.refused[ann.encode()] = ann.version

    def report(self, ann: Announcement | None, exc: Exception) -> None:
        if self.on_error is not None:
            self.on_error(ann, exc)
        else:
            log.error("model announcement %s refused (%s), keeping version %s: %s",
                      ann.version if ann else "?", refusal_reason(ann, exc), self.current, exc)


async def follow_models(settings: Settings, on_version: OnVersion, on_error: OnError | None = None,
                        stop: asyncio.Event | None = None,
                        on_verified: Callable[[Announcement], None] | None = None,
                        keep_verified: int = KEEP_VERIFIED,
                        on_position: Callable[[int], None] | None = None) -> None:
    """Run until cancelled (or ``stop`` is set), calling ``on_version`` for each newer version.

    Parameters
    ----------
    on_version
        Gets each newer version that passed every check; returning ``False`` refuses it.
    on_error
        Gets every refused announcement with the exception (``None`` and the decoding error
        for a record that is no announcement); it logs and counts them. Without it the
        follower logs them.
    on_verified
        Gets older versions of the same batch that also passed every check, newest first, at
        most ``keep_verified`` (serving keeps them as rollback targets).
    on_position
        Gets the consumer's position once each batch is handled (serving's readiness: the
        start-up backlog is handled when the position reaches the end offset it saw).
    """
    follower = _Follower(LoadPolicy.from_settings(settings), on_version, on_error, on_verified, keep_verified)
    backoff = 0.5
    while stop is None or not stop.is_set():
        consumer = AIOKafkaConsumer(settings.topic(MODEL_UPDATES), **aiokafka_config(settings),
                                    group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
        try:
            await consumer.start()
            backoff = 0.5
            while stop is None or not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                announcements = []
                for messages in batches.values():
                    for msg in messages:
                        try:
                            announcements.append(Announcement.decode(msg.value))
                        except Exception as exc:  # a foreign record on the topic
                            follower.report(None, exc)
                if announcements:
                    await follower.handle(announcements)
                if on_position is not None:
                    for tp in consumer.assignment():
                        on_position(await consumer.position(tp))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("model-updates consumer failed (%s); retrying in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
        finally:
            try:
                await consumer.stop()
            except Exception:
                pass
