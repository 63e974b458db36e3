"""Several sharded serving instances on one machine: their names, ports and settings.

``streamrec up --serving-instances N`` runs instance ``i`` of ``N`` (:mod:`serving.ownership`)
on ``STREAMREC_HTTP_PORT + i``, each told its place (``STREAMREC_SERVING_INSTANCE=i/N``) and
every instance's URL (``STREAMREC_SERVING_PEERS``): the instances find each other through the
settings ``up`` gives them, with nothing to discover at run time. They are named
``serving-0`` … ``serving-{N-1}`` (logs, run file, ``streamrec status``); one instance keeps
the name ``serving`` and today's settings.

Examples
--------
>>> from streamrec.settings import Settings
>>> [(i.name, i.port, i.env["STREAMREC_SERVING_INSTANCE"]) for i in serving_instances(Settings(), 2)]
[('serving-0', 8080, '0/2'), ('serving-1', 8081, '1/2')]
>>> serving_instances(Settings(), 2)[1].env["STREAMREC_SERVING_PEERS"]
'http://127.0.0.1:8080,http://127.0.0.1:8081'
>>> serving_instances(Settings(), 1)[0].env
{}
"""
from __future__ import annotations

from dataclasses import dataclass, field

from streamrec.settings import Settings


@dataclass(frozen=True)
class ServingInstance:
    name: str
    port: int
    env: dict[str, str] = field(default_factory=dict)   # settings of this instance beyond the shared ones


def _reachable(host: str) -> str:
    """Where the other instances reach one bound to ``host`` (a wildcard is reached on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def serving_instances(settings: Settings, count: int) -> list[ServingInstance]:
    """The ``count`` serving instances ``up`` runs (one: ``serving`` on ``http_port``, as it is)."""
    if count < 1:
        raise ValueError("--serving-instances must be at least 1")
    if count == 1:
        return [ServingInstance("serving", settings.http_port)]
    if count > settings.partitions:
        raise ValueError(f"--serving-instances {count} is more than the {settings.partitions} partitions "
                         "(STREAMREC_PARTITIONS): an instance would keep no user")
    ports = [settings.http_port + i for i in range(count)]
    peers = ",".join(f"http://{_reachable(settings.http_host)}:{port}" for port in ports)
    return [ServingInstance(f"serving-{i}", port, {"STREAMREC_HTTP_PORT": str(port),
                                                   "STREAMREC_SERVING_INSTANCE": f"{i}/{count}",
                                                   "STREAMREC_SERVING_PEERS": peers})
            for i, port in enumerate(ports)]


__all__ = ["ServingInstance", "serving_instances"]
