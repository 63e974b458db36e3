"""EventProducer's own logic: the delivery ledger, validation before anything is queued, closed
and unconfigured producers. Delivery to a real broker: tests/integration/test_event_producer.py."""
import doctest

import pytest

import streamrec.producer
from streamrec.contracts.events import Event, InvalidEvent
from streamrec.producer import DeliveryError, DeliveryLedger, EventProducer
from streamrec.settings import Settings

NOWHERE = Settings(bootstrap_servers="127.0.0.1:9")   # nothing listens: no delivery ever succeeds


def test_ledger_counts_positions_and_hands_failures_over_once():
    ledger = DeliveryLedger()
    a, b, c = (Event(u, "i", "view", 1.7e9) for u in "abc")
    ledger.sent(3)
    assert ledger.pending == 3 and ledger.token == ""
    ledger.acknowledged((a,), 0, 5)
    ledger.acknowledged((b,), 0, 3)      # an older report after a newer one: the token keeps the highest
    assert ledger.token == "p0:5" and ledger.pending == 1
    ledger.failed((c,), "boom")
    assert ledger.pending == 0 and ledger.take_failures() == [(c, "boom")] and ledger.take_failures() == []
    assert (ledger.events_acknowledged, ledger.events_failed) == (2, 1)


def test_invalid_events_raise_before_anything_is_queued():
    producer = EventProducer(NOWHERE, delivery_timeout_s=1)
    with pytest.raises(InvalidEvent) as err:
        producer.send({"user_id": "u", "item_id": "i", "event_type": "like", "timestamp": 1.7e9})
    assert (err.value.reason, err.value.field) == ("unknown_event_type", "event_type")
    assert producer.close(timeout=1) == "" and producer.ledger.events_sent == 0
    with pytest.raises(RuntimeError, match="closed"):
        producer.send({"user_id": "u", "item_id": "i", "event_type": "view", "timestamp": 1.7e9})


def test_ids_are_kept_or_generated_and_a_short_wait_reports_pending():
    producer = EventProducer(NOWHERE, delivery_timeout_s=30)
    given = producer.send(Event("u", "i", "view", 1.7e9, event_id="mine"))
    generated = producer.send({"user_id": 7, "item_id": 8, "event_type": "click", "timestamp": 1.7e9})
    assert given == "mine" and len(generated) == 32
    with pytest.raises(DeliveryError) as err:
        producer.flush(timeout=0.2)
    assert err.value.pending == 2 and err.value.failed == [] and err.value.token == ""
    with pytest.raises(DeliveryError):
        producer.close(timeout=0.1)


def test_no_broker_configured_or_running_is_a_clear_error(tmp_path):
    with pytest.raises(ConnectionError, match="no Kafka found"):
        EventProducer(Settings(state_dir=tmp_path, broker_port=0))


def test_docstring_examples():
    assert doctest.testmod(streamrec.producer).failed == 0
