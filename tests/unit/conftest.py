"""Serving's HTTP app on a real port with its producer replaced by an in-memory log.

The broker itself is tested in tests/integration; these route tests check what serving
answers and what it writes, with every message appended to :class:`MemoryLog` and
acknowledged at once (or never, when held).
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

import pytest
from aiohttp import web

from serving.event_ingest import EventIngest
from serving.http_api import build_app
from serving.model_holder import ModelHolder
from serving.recommender_service import RecommenderService
from serving.state_replica import StateReplica
from streamrec.settings import Settings


@dataclass
class Meta:
    partition: int
    offset: int


class MemoryLog:
    """Appends messages per partition and acknowledges them at once (or never, when held)."""

    def __init__(self, hold: bool = False):
        self.hold = hold
        self.partitions: dict[int, list[bytes]] = defaultdict(list)

    async def enqueue(self, topic: str, key: bytes, value: bytes, partition: int):
        future = asyncio.get_running_loop().create_future()
        if not self.hold:
            self.partitions[partition].append(value)
            future.set_result(Meta(partition, len(self.partitions[partition]) - 1))
        return future


@pytest.fixture
async def serve(tmp_path):
    """``serve(log, **settings_changes)`` -> (base url, settings, service); everything stops with the test."""
    runners, holders = [], []

    async def start(log: MemoryLog | None, **changes):
        settings = Settings(state_dir=tmp_path, vector_dim=8, serving_queue_target_s=5.0,
                            serving_queue_timeout_s=10.0, **changes)
        replica = StateReplica(settings)
        holder = ModelHolder(settings, replica)
        ingest = EventIngest(settings, log.enqueue if log else None)
        service = RecommenderService(settings, replica, holder)
        runner = web.AppRunner(build_app(service, lambda: [], None, ingest))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        holders.append(holder)
        return f"http://127.0.0.1:{runner.addresses[0][1]}", settings, service

    yield start
    for runner in runners:
        await runner.cleanup()
    for holder in holders:
        holder.close()
