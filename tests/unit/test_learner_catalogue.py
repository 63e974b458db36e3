"""The learner's catalogue feed: items give the trainer rows, a tombstone or an unavailable item
is left out of the next version (and asks for one), invalid items are skipped, and nothing is
published before every partition was read to its end."""
import json
import time

import numpy as np
from confluent_kafka import KafkaError

from learner.catalogue_feed import CatalogueFeed
from learner.trainer import ContinualTrainer
from tests.learner_helpers import small_settings


class _Error:
    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code


class _Message:
    """What confluent-kafka's consume() hands out, for the fields the feed reads."""

    def __init__(self, key, value, partition=0, error=None):
        self._key, self._value, self._partition, self._error = key, value, partition, error

    def key(self):
        return self._key

    def value(self):
        return self._value

    def partition(self):
        return self._partition

    def error(self):
        return self._error


class _Consumer:
    def __init__(self):
        self.queue: list[_Message] = []

    def consume(self, num_messages, timeout):
        out, self.queue = self.queue[:num_messages], self.queue[num_messages:]
        return out


def _item(item_id: str, **fields) -> _Message:
    return _Message(item_id.encode(), json.dumps({"item_id": item_id, "title": item_id, **fields}).encode())


def test_retired_and_unavailable_items_leave_the_next_version_and_come_back():
    settings = small_settings()
    consumer, trainer = _Consumer(), ContinualTrainer(settings)
    feed = CatalogueFeed(settings, consumer, partitions=[0, 1])
    consumer.queue = [_item("a"), _item("b"), _item("c"), _Message(b"x", b"not json"),
                      _Message(None, None, 0, _Error(KafkaError._PARTITION_EOF))]
    assert feed.poll(trainer) == 5
    assert trainer.item_ids == ["a", "b", "c"] and not feed.caught_up   # partition 1 not read yet
    consumer.queue = [_Message(None, None, 1, _Error(KafkaError._PARTITION_EOF))]
    feed.poll(trainer)
    assert feed.caught_up

    trainer.catalogue_changed_at = None
    consumer.queue = [_Message(b"a", None), _item("b", available=False)]   # a tombstone, an unavailable item
    feed.poll(trainer)
    assert trainer.catalogue_changed_at is not None        # a catalogue-only version is due
    ids, vectors = trainer.item_vectors()
    kept, kept_vectors = feed.servable(ids, vectors)
    assert kept == ["c"] and np.array_equal(kept_vectors, vectors[2:3])
    assert trainer.item_ids == ["a", "b", "c"]               # the model keeps their rows

    consumer.queue = [_item("a"), _item("b", available=True)]
    feed.poll(trainer)
    assert feed.servable(ids, vectors)[0] == ["a", "b", "c"]


def test_expired_items_are_left_out_of_a_version_written_after_their_expiry():
    settings = small_settings()
    consumer, trainer = _Consumer(), ContinualTrainer(settings)
    feed = CatalogueFeed(settings, consumer, partitions=[0])
    expiry = time.time() + 3600
    consumer.queue = [_item("a", expires_at=expiry), _item("b")]
    feed.poll(trainer)
    ids, vectors = trainer.item_vectors()
    assert feed.servable(ids, vectors)[0] == ["a", "b"]
    assert feed.servable(ids, vectors, now=expiry)[0] == ["b"]


def test_a_title_change_alone_does_not_ask_for_a_version_of_its_own():
    settings = small_settings()
    consumer, trainer = _Consumer(), ContinualTrainer(settings)
    feed = CatalogueFeed(settings, consumer, partitions=[0])
    consumer.queue = [_item("a")]
    feed.poll(trainer)
    trainer.catalogue_changed_at = None
    consumer.queue = [_Message(b"a", json.dumps({"item_id": "a", "title": "a"}).encode())]   # same content
    feed.poll(trainer)
    assert trainer.catalogue_changed_at is None
