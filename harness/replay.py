"""Publishing events and items to Kafka, and ``streamrec replay``.

Applications use :class:`streamrec.producer.EventProducer` (validation, ids, delivery errors
raised). :class:`EventPublisher` is the harness's bulk loader, which also sends the malformed
messages the demo and the fault tests need: it keys events by
``user_id`` and, when packing, groups them by the partition Kafka's default partitioner
gives that key, so a packed message only holds users of the partition it is written to
(the event contract, docs/contracts.md). Packing is what makes high event rates affordable: Faust's
per-message overhead is large, the per-event cost inside one message is small.

Examples
--------
>>> pub = EventPublisher(settings, pack=100)            # doctest: +SKIP
>>> pub.publish([{"user_id": "u1", "item_id": "i9", "event_type": "click",
...               "timestamp": 1.7e9}])                   # doctest: +SKIP
>>> pub.flush()                                          # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from typing import Iterable, Sequence

from confluent_kafka import Producer

from harness.datasets import Dataset
from harness.datasets.flags import add_dataset_arguments, dataset_from_args
from streamrec.contracts.events import Event, encode_events
from streamrec.contracts.items import Item
from streamrec.kafka.config import producer_config
from streamrec.settings import Settings
from streamrec.contracts.topics import EVENTS, ITEMS, partition_for


class PublishError(RuntimeError):
    pass


class EventPublisher:
    """Produce events keyed by user, optionally packed per partition, with delivery checks."""

    def __init__(self, settings: Settings, pack: int = 1, topic: str = EVENTS):
        self.settings = settings
        self.pack = max(1, pack)
        self.topic = settings.topic(topic)
        self.producer = Producer(producer_config(settings, **{"queue.buffering.max.messages": 200000}))
        self.delivered = 0
        self.failed: list[str] = []

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self.failed.append(str(err))
        else:
            self.delivered += 1

    def _produce(self, key: bytes, value: bytes, partition: int | None = None) -> None:
        kwargs = {"partition": partition} if partition is not None else {}
        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, on_delivery=self._on_delivery,
                                      **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.05)
        self.producer.poll(0)

    def publish(self, events: Sequence[Event | dict]) -> int:
        """Publish events in order; returns the number of messages produced."""
        docs = [e.to_dict() if isinstance(e, Event) else e for e in events]
        if self.pack == 1:
            for d in docs:
                self._produce(str(d["user_id"]).encode(), encode_events([d]))
            return len(docs)
        groups: dict[int, list[dict]] = defaultdict(list)
        for d in docs:
            groups[partition_for(str(d["user_id"]), self.settings.partitions)].append(d)
        messages = 0
        for partition, group in groups.items():
            for start in range(0, len(group), self.pack):
                chunk = group[start:start + self.pack]
                self._produce(str(chunk[0]["user_id"]).encode(), encode_events(chunk), partition)
                messages += 1
        return messages

    def publish_raw(self, value: bytes, key: bytes | None = None) -> None:
        self._produce(key or b"", value)

    def flush(self, timeout: float = 60.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining:
            raise PublishError(f"{remaining} messages not delivered within {timeout}s")
        if self.failed:
            raise PublishError(f"{len(self.failed)} messages failed: {self.failed[0]}")


def publish_items(settings: Settings, items: Iterable[Item]) -> int:
    producer = Producer(producer_config(settings))
    n = 0
    for item in items:
        producer.produce(settings.topic(ITEMS), key=item.item_id.encode(),
                         value=json.dumps(item.to_dict()).encode())
        n += 1
        if n % 1000 == 0:
            producer.poll(0)
    if producer.flush(60):
        raise PublishError("items not delivered")
    return n


def replay_dataset(settings: Settings, dataset: Dataset, *, rate: float | None = None,
                   limit: int | None = None, pack: int = 100, progress: bool = True,
                   with_event_ids: bool = True) -> dict:
    """Publish the catalogue, then the events in timestamp order, at ``rate`` events/s or flat out.

    Returns a summary: items, events and messages published, seconds taken.
    """
    n_items = publish_items(settings, dataset.items)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    pub = EventPublisher(settings, pack=pack)
    block = max(pack * settings.partitions, 1) if rate is None else max(1, min(pack, int(rate // 20) or 1))
    bar = _progress(n, progress)
    start = time.monotonic()
    messages = 0
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        docs = [{"user_id": str(dataset.user_ids[j]), "item_id": str(dataset.item_ids[j]),
                 "event_type": str(dataset.event_types[j]), "timestamp": float(dataset.timestamps[j]),
                 "value": float(dataset.values[j]),
                 **({"event_id": f"{dataset.name}-{j}"} if with_event_ids else {})}
                for j in range(lo, hi)]
        messages += pub.publish(docs)
        if rate:
            ahead = hi / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        bar(hi)
    pub.flush()
    elapsed = time.monotonic() - start
    bar(n, done=True)
    return {"items": n_items, "events": n, "messages": messages, "seconds": round(elapsed, 3),
            "events_per_s": round(n / elapsed, 1) if elapsed > 0 else None}


def _progress(total: int, enabled: bool):
    if not enabled:
        return lambda *args, **kwargs: None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    prog = Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.completed}/{task.total} events"),
                    TimeRemainingColumn(), transient=False)
    task = prog.add_task("replay", total=total)
    prog.start()

    def update(done_count: int, done: bool = False) -> None:
        prog.update(task, completed=done_count)
        if done:
            prog.stop()
    return update


def main(argv: list[str]) -> int:
    from streamrec.kafka.runtime import embedded_or_configured, require_broker

    parser = argparse.ArgumentParser(prog="streamrec replay", description=(
        "Publish a dataset's item catalogue to `items` and its events (ratings as `rating` events) "
        "to `events`, in timestamp order; the load report (rows read, rejected and why) goes to "
        "stderr. Without KAFKA_BOOTSTRAP_SERVERS it publishes to the "
        "broker of the running `streamrec up` (its run file in the state directory, else the embedded "
        "broker's port, STREAMREC_BROKER_PORT)."))
    add_dataset_arguments(parser)
    parser.add_argument("--data-dir", help="dataset folder (else STREAMREC_DATA_DIR, else ../shared/data)")
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--rate", type=float, help="events per second")
    speed.add_argument("--max", action="store_true", help="as fast as possible (the default)")
    parser.add_argument("--limit", type=int, help="publish only the first N events")
    parser.add_argument("--pack", type=int, default=100, help="events per message (1: one event per message)")
    parser.add_argument("--bootstrap-servers", help="Kafka to publish to (else KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--throwaway-broker", action="store_true",
                        help="with no Kafka configured and no `streamrec up` running: publish into an embedded "
                             "broker of replay's own, which is gone (with everything published) when replay ends")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the broker to answer")
    args = parser.parse_args(argv)
    settings = Settings.from_env(bootstrap_servers=args.bootstrap_servers, data_dir=args.data_dir)
    # The data first: a file with a wrong column should say so before anything asks for a broker.
    dataset = dataset_from_args(args, "streamrec replay", settings, settings.data_dir)
    if dataset is None:
        return 2
    settings = target_settings(settings, args.throwaway_broker)
    with embedded_or_configured(settings) as bound:
        if not settings.bootstrap_servers:
            print(f"streamrec replay: publishing into a THROWAWAY embedded broker at {bound.bootstrap_servers}; "
                  "no other process reads it and it is stopped, with everything published, when replay exits",
                  file=sys.stderr, flush=True)
        require_broker(bound, args.timeout)
        summary = replay_dataset(bound, dataset, rate=args.rate, limit=args.limit, pack=args.pack,
                                 progress=sys.stderr.isatty())
    summary["dataset"], summary["rows_rejected"] = dataset.name, sum(dataset.report.events.rejected.values())
    summary["bootstrap_servers"] = bound.bootstrap_servers
    summary["broker"] = "throwaway (stopped)" if not settings.bootstrap_servers else "kept"
    print(json.dumps(summary))
    return 0


def target_settings(settings: Settings, throwaway: bool) -> Settings:
    """Where replay publishes: the configured cluster, else the running ``up``'s broker.

    The running ``up`` is found as every client finds it
    (:func:`streamrec.kafka.runfile.find_broker`: the run file of this state directory, else
    the embedded broker's fixed port). With none, a throwaway embedded broker only when asked
    for (``--throwaway-broker``): publishing into one while the user means a running system
    would report success for events nobody will ever read. Raises
    :class:`~streamrec.kafka.runtime.StartupError` otherwise.
    """
    from streamrec.kafka.runfile import find_broker, no_broker_found
    from streamrec.kafka.runtime import StartupError

    if settings.bootstrap_servers or throwaway:
        return settings
    found = find_broker(settings)
    if found is not None:
        address, how = found
        print(f"streamrec replay: publishing to {how} at {address}", file=sys.stderr, flush=True)
        return settings.replace(bootstrap_servers=address)
    raise StartupError(f"{no_broker_found(settings)}, or pass --throwaway-broker to publish into a temporary "
                       "broker that nothing reads")
