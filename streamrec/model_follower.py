"""Follow ``model-updates`` and hand each verified version to a callback.

Every process that needs the newest model (streams, serving) runs one of these: an aiokafka
consumer with no group (each process must see every version), reading the single-partition
compacted topic from the beginning. Loading and checksum verification run in a thread so
the event loop keeps serving. A version whose file is missing or fails its checksum is
skipped and counted, and the process keeps the version it had.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from aiokafka import AIOKafkaConsumer

from streamrec.kafka import aiokafka_config
from streamrec.model_store import Announcement, Snapshot, load_version
from streamrec.settings import Settings
from streamrec.topics import MODEL_UPDATES

log = logging.getLogger(__name__)

OnVersion = Callable[[Snapshot, Announcement], Awaitable[None] | None]


async def follow_models(settings: Settings, on_version: OnVersion,
                        on_error: Callable[[Announcement | None, Exception], None] | None = None,
                        stop: asyncio.Event | None = None,
                        on_announcement: Callable[[Announcement], None] | None = None) -> None:
    """Run until cancelled (or ``stop`` is set), calling ``on_version`` for each newer version.

    ``on_announcement`` (optional) sees every decodable announcement, loaded or not (serving
    keeps the last few so an operator can roll back to one).
    """
    current = 0
    backoff = 0.5
    while stop is None or not stop.is_set():
        consumer = AIOKafkaConsumer(settings.topic(MODEL_UPDATES), **aiokafka_config(settings),
                                    group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
        try:
            await consumer.start()
            backoff = 0.5
            while stop is None or not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                newest = None
                for messages in batches.values():
                    for msg in messages:
                        try:
                            ann = Announcement.decode(msg.value)
                        except Exception as exc:  # a foreign record on the topic
                            log.warning("ignoring undecodable model announcement: %s", exc)
                            if on_error:
                                on_error(None, exc)
                            continue
                        if on_announcement:
                            on_announcement(ann)
                        if ann.version > current and (newest is None or ann.version > newest.version):
                            newest = ann
                if newest is None:
                    continue
                try:
                    snapshot = await asyncio.get_running_loop().run_in_executor(None, load_version, newest)
                except Exception as exc:
                    log.error("model version %s not loaded, keeping version %s: %s", newest.version, current, exc)
                    if on_error:
                        on_error(newest, exc)
                    current = newest.version  # do not retry a bad file forever; a newer one will come
                    continue
                result = on_version(snapshot, newest)
                if asyncio.iscoroutine(result):
                    await result
                current = newest.version
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
