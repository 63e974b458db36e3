"""Sharded serving: which users this serving instance keeps, and where the others are kept.

N serving instances share the users the way the streams workers do, by ``events`` partition:
instance ``i`` of ``N`` (``STREAMREC_SERVING_INSTANCE=i/N``) owns every partition ``p`` with
``p % N == i``, and a user belongs to the partition every producer writes their events to
(:func:`~streamrec.contracts.events.owner_partition`, Kafka's default partitioner over
``settings.partitions``). The owner keeps the user's state (the changelog and events of its
partitions, :mod:`serving.replica_feeds`); any other instance forwards a request for that user
to it (:mod:`serving.forwarding`), at the URL ``STREAMREC_SERVING_PEERS`` lists for it.

Why a static assignment and not a consumer group: serving's replica reads its topics from the
beginning with manual assignment and no committed offsets, because it must hold every owned
user's state before it answers. A group rebalance would move partitions between instances
at run time, each move costing a re-read of that partition's history while requests for its
users have nowhere to go, and every instance would have to learn the new assignment before it
could route. A fixed ``i/N`` is known before anything starts, the same on every instance,
and a restarted instance takes back exactly what it had. Changing N means restarting the
instances with the new setting.

``0/1`` (the default) owns every partition and never forwards: one instance behaves exactly
as an unsharded one.

Examples
--------
>>> own = Ownership.parse("1/2", partitions=4, peers="http://a:8080,http://b:8081")
>>> own.owned_partitions(), own.owns_partition(3), own.owner_of_partition(2)
([1, 3], True, 0)
>>> own.peer_url(own.owner_of_partition(2))
'http://a:8080'
>>> Ownership.parse("0/1", partitions=4).owned_partitions()
[0, 1, 2, 3]
>>> Ownership.parse("2/2", partitions=4)
Traceback (most recent call last):
...
serving.ownership.ShardingError: STREAMREC_SERVING_INSTANCE='2/2': the instance number must be 0 to 1
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from streamrec.contracts.events import owner_partition
from streamrec.settings import Settings


class ShardingError(ValueError):
    """The sharding settings contradict one another (the message names the setting)."""


@dataclass(frozen=True)
class Ownership:
    """Instance ``instance`` of ``instances`` over ``partitions`` events partitions."""

    instance: int = 0
    instances: int = 1
    partitions: int = 1
    peers: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> "Ownership":
        return cls.parse(settings.serving_instance, settings.partitions, settings.serving_peers)

    @classmethod
    def parse(cls, spec: str, partitions: int, peers: str = "") -> "Ownership":
        """Read ``"i/N"`` and the peer list; :class:`ShardingError` naming what is wrong."""
        what = f"STREAMREC_SERVING_INSTANCE={spec!r}"
        head, slash, tail = str(spec).strip().partition("/")
        if not slash or not head.strip().isdigit() or not tail.strip().isdigit():
            raise ShardingError(f"{what}: expected i/N, e.g. 0/2 (instance 0 of 2)")
        instance, instances = int(head), int(tail)
        if instances < 1:
            raise ShardingError(f"{what}: N must be at least 1")
        if instance >= instances:
            raise ShardingError(f"{what}: the instance number must be 0 to {instances - 1}")
        if instances > partitions:
            raise ShardingError(f"{what}: {instances} instances but {partitions} partitions "
                                "(STREAMREC_PARTITIONS): an instance would own no user")
        urls = tuple(u.strip().rstrip("/") for u in str(peers or "").split(",") if u.strip())
        if instances > 1 and len(urls) != instances:
            raise ShardingError(f"STREAMREC_SERVING_PEERS names {len(urls)} URLs; {what} needs {instances}, "
                                "the base URL of each instance in instance order")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ShardingError(f"STREAMREC_SERVING_PEERS: {url!r} is not an http(s) base URL")
        return cls(instance, instances, partitions, urls)

    @property
    def sharded(self) -> bool:
        return self.instances > 1

    @property
    def label(self) -> str:
        return f"{self.instance}/{self.instances}"

    def owner_of_partition(self, partition: int) -> int:
        return partition % self.instances

    def owns_partition(self, partition: int) -> bool:
        return self.owner_of_partition(partition) == self.instance

    def owned_partitions(self) -> list[int]:
        return [p for p in range(self.partitions) if self.owns_partition(p)]

    def partition_of(self, user_id: str) -> int:
        """The ``events`` partition of ``user_id``: the one every producer writes to."""
        return owner_partition(user_id, self.partitions)

    def owner_of(self, user_id: str) -> int:
        return self.owner_of_partition(self.partition_of(user_id))

    def owns(self, user_id: str) -> bool:
        return self.owner_of(user_id) == self.instance

    def peer_url(self, instance: int) -> str:
        return self.peers[instance]


__all__ = ["Ownership", "ShardingError"]
