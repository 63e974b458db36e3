"""The consistency token: where on ``events`` the broker acknowledged a write.

``POST /events`` answers with one, :class:`streamrec.producer.EventProducer` keeps one, and
any Kafka producer can build the same from its own delivery reports: for every partition of
``events`` written to, the highest offset the broker acknowledged. Its text form is
``p<partition>:<offset>`` pairs sorted by partition and joined by commas, e.g.
``"p0:17,p3:9"``; the empty string means nothing was written. A consumer that has applied
every message of partition 0 up to offset 17 and of partition 3 up to offset 9 has applied
everything the token stands for (a later step lets a recommendation request carry it, to
be answered only once serving has).

Examples
--------
>>> positions: dict[int, int] = {}
>>> for partition, offset in [(3, 9), (0, 12), (0, 17)]:   # delivery reports, any order
...     acknowledge(positions, partition, offset)
>>> token = encode_token(positions)
>>> token
'p0:17,p3:9'
>>> parse_token(token)
{0: 17, 3: 9}
>>> encode_token(merge(parse_token("p0:20"), parse_token("p0:17,p1:4")))
'p0:20,p1:4'
"""
from __future__ import annotations

from typing import Mapping

# A token names at most one position per partition: far fewer than this in any deployment.
MAX_PARTITIONS = 10_000


def acknowledge(positions: dict[int, int], partition: int, offset: int) -> None:
    """Record one acknowledged message: keep the highest offset seen per partition."""
    if offset > positions.get(partition, -1):
        positions[partition] = offset


def merge(*tokens: Mapping[int, int]) -> dict[int, int]:
    """Positions covering all of ``tokens``: the highest offset per partition."""
    out: dict[int, int] = {}
    for positions in tokens:
        for partition, offset in positions.items():
            acknowledge(out, partition, offset)
    return out


def encode_token(positions: Mapping[int, int]) -> str:
    """The text form: ``p<partition>:<offset>`` sorted by partition, comma-separated."""
    return ",".join(f"p{p}:{positions[p]}" for p in sorted(positions))


def parse_token(text: str) -> dict[int, int]:
    """Positions from a token's text; :class:`ValueError` naming the bad part otherwise.

    >>> parse_token("")
    {}
    >>> parse_token("p0:x")
    Traceback (most recent call last):
    ...
    ValueError: bad consistency token part 'p0:x': expected p<partition>:<offset>
    """
    positions: dict[int, int] = {}
    if not text:
        return positions
    parts = text.split(",")
    if len(parts) > MAX_PARTITIONS:
        raise ValueError(f"consistency token names more than {MAX_PARTITIONS} partitions")
    for part in parts:
        partition, sep, offset = part[1:].partition(":")
        if not (part.startswith("p") and sep and partition.isdigit() and offset.isdigit()
                and partition.isascii() and offset.isascii()):
            raise ValueError(f"bad consistency token part {part[:40]!r}: expected p<partition>:<offset>")
        acknowledge(positions, int(partition), int(offset))
    return positions
