"""Event semantics: parsing the three settings, the value rule, and the contract accepting what is declared."""
from __future__ import annotations

import json

import pytest

from streamrec.contracts.events import EVENT_TYPES, parse_message, validate
from streamrec.contracts.semantics import (DEFAULT_EVENT_WEIGHTS, MAX_EVENT_TYPES, event_semantics,
                                           parse_event_weights, parse_value_rule)
from streamrec.settings import Settings

SHOP = "view=0.5,click=1,cart=2,purchase=3,dislike=-1,skip=-0.5"


def _event(event_type: str, value: float | None = None) -> bytes:
    doc = {"user_id": "u", "item_id": "i", "event_type": event_type, "timestamp": 1.7e9}
    if value is not None:
        doc["value"] = value
    return json.dumps(doc).encode()


def test_the_defaults_are_the_five_types_and_weights_the_system_always_had():
    s = Settings().semantics
    assert s.types == EVENT_TYPES == ("view", "click", "add_to_cart", "purchase", "rating")
    assert dict(s.declared) == {"view": 0.5, "click": 1.0, "add_to_cart": 2.0, "purchase": 3.0, "rating": 1.0}
    assert str(s.value_rule) == "ignore" and not s.allow_repeats
    # ignore: a 1-star rating weighs what a 5-star one does, as before the rule existed.
    assert s.weight("rating", 1.0) == s.weight("rating", 5.0) == s.weight("rating", None) == 1.0


def test_declared_types_keep_their_order_and_weights_negative_ones_included():
    s = event_semantics(SHOP)
    assert s.types == ("view", "click", "cart", "purchase", "dislike", "skip")
    assert [s.weight(t, None) for t in s.types] == [0.5, 1.0, 2.0, 3.0, -1.0, -0.5]
    assert s.accepts("cart") and not s.accepts("add_to_cart")


@pytest.mark.parametrize("spec,says", [
    ("view=0.5,Like=1", "event type 'Like' must be a lowercase letter"),
    ("view=0.5,1star=1", "event type '1star'"),
    ("view=0.5,click", "'click' is not name=weight"),
    ("view=0.5,view=1", "'view' is declared twice"),
    ("view=lots", "weight of 'view': 'lots' is not a number"),
    ("view=nan", "'nan' is not a finite number"),
    ("a" * 33 + "=1", "up to 31"),
    (",".join(f"t{k}=1" for k in range(MAX_EVENT_TYPES + 1)), f"at most {MAX_EVENT_TYPES}"),
])
def test_malformed_event_weights_are_refused_naming_the_part(spec, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        parse_event_weights(spec)


def test_value_rules():
    assert parse_value_rule("ignore").apply(2.0, 0.0) == 2.0
    threshold = parse_value_rule("threshold:3")
    assert [threshold.apply(1.0, v) for v in (1.0, 2.9, 3.0, 5.0)] == [-1.0, -1.0, 1.0, 1.0]
    assert threshold.apply(-1.0, 5.0) == -1.0          # a negative type stays negative
    assert threshold.apply(2.0, None) == 2.0           # no value: the type's weight
    scale = parse_value_rule("scale:100")
    assert [scale.apply(0.5, v) for v in (-3.0, 0.0, 30.0, 500.0)] == [0.0, 0.0, 15.0, 50.0]
    assert parse_value_rule("scale").apply(1.0, 1e6) == 10.0   # the default bound
    assert [str(parse_value_rule(r)) for r in ("ignore", "threshold:3.5", "scale")] == \
        ["ignore", "threshold:3.5", "scale:10"]


@pytest.mark.parametrize("rule", ["threshold", "threshold:x", "scale:0", "scale:-1", "clip:3", "ignore:1", ""])
def test_malformed_value_rules_are_refused(rule):
    with pytest.raises(ValueError):
        parse_value_rule(rule)


def test_a_bad_setting_is_refused_when_the_settings_are_made_naming_the_variable():
    for env, says in ((("STREAMREC_EVENT_WEIGHTS", "view=x"), "STREAMREC_EVENT_WEIGHTS='view=x': weight"),
                      (("STREAMREC_VALUE_RULE", "thresh:3"), "STREAMREC_VALUE_RULE='thresh:3': value rule"),
                      (("STREAMREC_REPEAT_CONSUMPTION", "sometimes"), "STREAMREC_REPEAT_CONSUMPTION='sometimes'")):
        with pytest.raises(ValueError, match=says):
            Settings.from_env(dict([env]))


def test_the_contract_accepts_declared_types_and_dead_letters_the_rest():
    custom = Settings(event_weights="like=1,dislike=-1")
    ok, bad = parse_message(_event("like"), custom)
    assert [e.event_type for e in ok] == ["like"] and bad == []
    ok, bad = parse_message(_event("click"), custom)        # a default type, not declared here
    assert ok == [] and bad[0].reason == "unknown_event_type" and "like, dislike" in bad[0].detail
    assert parse_message(_event("like"), Settings())[1][0].reason == "unknown_event_type"


def test_threshold_turns_low_ratings_negative_and_scale_weighs_by_value():
    s = event_semantics(DEFAULT_EVENT_WEIGHTS, "threshold:3", "allow")
    low, high, bare = (validate(json.loads(_event("rating", v)), Settings()) for v in (2.0, 4.0, None))
    assert (s.negative(low), s.negative(high), s.negative(bare)) == (True, False, False)
    assert s.allow_repeats and s.to_dict()["repeat"] == "allow"
    dwell = event_semantics("view=0.1", "scale:600")
    assert dwell.weights_of([validate(json.loads(_event("view", 300.0)), Settings(event_weights="view=0.1"))]) \
        .tolist() == pytest.approx([30.0])
