"""Invalid items to ``items-dlq``: the streams worker checks every ``items`` message once.

Several processes read ``items`` but only one may dead-letter a bad one, or it would land in
``items-dlq`` several times. Serving cannot: every serving process reads the whole topic
from the beginning, on every start. Neither can the learner: it re-reads the topic from the
beginning on every start too. The streams worker reads it in its consumer group with
committed offsets, so each message is checked by one worker, once (at least once: after a
crash a copy may be written again, with the same key, so a reader can tell), and it is the
process that already turns bad input into dead letters (``events-dlq``, :mod:`streams.batch`).
The check is :func:`streamrec.contracts.items.decode_item_message`, the reading serving and the
learner apply, so what lands here is exactly what they skip.

A dead letter has the shape of an ``events-dlq`` one (:class:`streams.batch.DeadLetter`):
key ``topic/partition/offset``, the original bytes, headers ``reason`` (one of
:data:`streamrec.contracts.items.ITEM_REASONS`), ``detail`` and the source position.

Examples
--------
>>> from streamrec.settings import Settings
>>> records = [Record("items", 0, 1, b'{"item_id": "a", "title": "Heat"}', 0.0, b"a"),
...            Record("items", 0, 2, None, 0.0, b"a"),                              # a tombstone
...            Record("items", 0, 3, b'{"item_id": "b", "available": "no"}', 0.0, b"b")]
>>> [(d.key(), d.rejection.reason) for d in dead_letters(records, Settings())]
[(b'items/0/3', 'bad_type')]
"""
from __future__ import annotations

from streamrec.contracts.events import Rejection
from streamrec.contracts.items import InvalidItem, decode_item_message
from streamrec.settings import Settings
from streams.batch import DeadLetter, Record


def dead_letters(records: list[Record], settings: Settings) -> list[DeadLetter]:
    """The dead letters of ``records`` (``items`` messages with their keys): one per invalid message."""
    out = []
    for record in records:
        try:
            decode_item_message(record.key, record.value, max_id_length=settings.max_id_length)
        except InvalidItem as exc:
            out.append(DeadLetter(record, Rejection(exc.reason, exc.detail), settings.dlq_max_copy_bytes))
    return out
