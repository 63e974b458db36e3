"""Request filters on item attributes, as pure logic: parsing refuses hostile input naming the
field, and what the vectorised store and filter let through is, for any catalogue and any
filter, what a plain reading of the rules says (checked against a reference predicate
written here, item by item)."""
import doctest
import importlib
import math

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from streamrec.contracts.items import Item
from streamrec.ranking.filters import MAX_FILTERED_ATTRIBUTES, MAX_VALUES, FilterError, ItemFilter, parse_filters
from streamrec.state.catalogue import Catalogue
from streamrec.state.item_attributes import ItemAttributes


@pytest.mark.parametrize("name", ["streamrec.ranking.filters", "streamrec.state.item_attributes"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("doc, field", [
    (["category"], "filters"),
    ("category=books", "filters"),
    ({f"a{j}": 1 for j in range(MAX_FILTERED_ATTRIBUTES + 1)}, "filters"),
    ({"": 1}, "filters"),
    ({"x" * 65: 1}, "filters"),
    ({"tab\there": 1}, "filters"),
    ({"category": ["a", "b"]}, "filters.category"),
    ({"category": None}, "filters.category"),
    ({"category": {}}, "filters.category"),
    ({"category": {"like": "bo%"}}, "filters.category"),
    ({"category": {"in": "books"}}, "filters.category.in"),
    ({"category": {"in": ["ok", ["nested"]]}}, "filters.category.in"),
    ({"category": {"not_in": list(range(MAX_VALUES + 1))}}, "filters.category.not_in"),
    ({"category": {"eq": {"nested": 1}}}, "filters.category.eq"),
    ({"category": "x" * 257}, "filters.category"),
    ({"price": math.nan}, "filters.price"),
    ({"price": {"lt": math.inf}}, "filters.price.lt"),
    ({"price": {"ne": -math.inf}}, "filters.price.ne"),
    ({"price": {"gte": 10 ** 400}}, "filters.price.gte"),
    ({"price": {"gt": "5"}}, "filters.price.gt"),
    ({"price": {"lte": True}}, "filters.price.lte"),
    ({"price": {"gte": 5, "lt": None}}, "filters.price.lt"),
])
def test_malformed_filters_name_the_field(doc, field):
    with pytest.raises(FilterError) as info:
        parse_filters(doc)
    assert info.value.field == field and info.value.message


def test_the_bounds_themselves_are_accepted():
    names = {f"a{j}": {"in": list(range(MAX_VALUES))} for j in range(MAX_FILTERED_ATTRIBUTES)}
    assert len(parse_filters(names).conditions) == MAX_FILTERED_ATTRIBUTES
    assert parse_filters({"x" * 64: "y" * 256, "p": {"gt": -1e308}}).conditions[1].operand == -1e308
    assert parse_filters({}).conditions == ()


def _catalogue(items: dict[str, dict]) -> Catalogue:
    catalogue = Catalogue()
    for item_id, attributes in items.items():
        catalogue.apply(item_id, Item(item_id, item_id, attributes=attributes))
    return catalogue


def _passing(doc: dict, catalogue: Catalogue, ids) -> list[str]:
    f = ItemFilter.build(catalogue, attributes=parse_filters(doc))
    return [i for i in ids if f.allows(i)]


def test_values_compare_by_type_and_value():
    catalogue = _catalogue({"s": {"v": "1"}, "n": {"v": 1}, "f": {"v": 1.0}, "b": {"v": True}, "none": {}})
    ids = ["s", "n", "f", "b", "none"]
    assert _passing({"v": "1"}, catalogue, ids) == ["s"]
    assert _passing({"v": 1}, catalogue, ids) == ["n", "f"]        # 1 and 1.0 are the same number
    assert _passing({"v": True}, catalogue, ids) == ["b"]
    assert _passing({"v": {"in": [True, "1"]}}, catalogue, ids) == ["s", "b"]
    assert _passing({"v": {"gte": 1}}, catalogue, ids) == ["n", "f"]   # ranges: numbers only
    assert _passing({"v": {"ne": 1}}, catalogue, ids) == ["s", "b", "none"]


def test_an_item_lacking_the_attribute_matches_only_negative_conditions():
    catalogue = _catalogue({"has": {"color": "red"}, "other": {"size": 3}})
    ids = ["has", "other", "never-in-the-catalogue"]
    assert _passing({"color": "red"}, catalogue, ids) == ["has"]
    assert _passing({"color": {"in": ["red", "blue"]}}, catalogue, ids) == ["has"]
    assert _passing({"color": {"ne": "blue"}}, catalogue, ids) == ids
    assert _passing({"color": {"not_in": ["red"]}}, catalogue, ids) == ["other", "never-in-the-catalogue"]
    assert _passing({"color": {"in": []}}, catalogue, ids) == []


def test_replaced_and_retired_items_are_filtered_by_what_they_carry_now():
    catalogue = _catalogue({"a": {"category": "books", "price": 5}})
    catalogue.apply("a", Item("a", "a", attributes={"category": "music"}))
    assert _passing({"category": "books"}, catalogue, ["a"]) == []
    assert _passing({"price": {"lt": 10}}, catalogue, ["a"]) == []          # price dropped
    assert _passing({"category": "music"}, catalogue, ["a"]) == ["a"]
    catalogue.apply("a", None)
    assert _passing({"category": "music"}, catalogue, ["a"]) == []
    assert ItemFilter.build(catalogue, attributes=parse_filters({"category": "music"})).bounded_ids() == []


def test_bounded_ids_combine_required_items_tags_and_attributes():
    catalogue = Catalogue()
    for item_id, tags, price in [("a", ("Crime",), 5), ("b", ("Drama",), 5), ("c", ("Crime",), 50)]:
        catalogue.apply(item_id, Item(item_id, item_id, tags=tags, attributes={"price": price}))
    cheap = parse_filters({"price": {"lt": 10}})
    assert ItemFilter.build(catalogue, attributes=cheap).bounded_ids() == ["a", "b"]
    assert ItemFilter.build(catalogue, attributes=cheap, require_tags=frozenset({"Crime"})).bounded_ids() == ["a"]
    assert ItemFilter.build(catalogue, attributes=cheap, require_items=frozenset({"b", "c"})).bounded_ids() == ["b"]
    assert ItemFilter.build(catalogue, attributes=cheap).bounded_ids(limit=1) is None   # too many to list
    assert ItemFilter.build(catalogue, exclude_tags=frozenset({"Crime"})).bounded_ids() is None
    assert ItemFilter.build(catalogue) is None and ItemFilter.build(catalogue, attributes=parse_filters({})) is None


# --- any catalogue, any filter: the store agrees with the rules read item by item ---------------------
names = st.sampled_from(["category", "price", "used"])
scalars = st.one_of(st.sampled_from(["a", "b", "1", ""]), st.integers(-3, 3), st.sampled_from([0.5, 1.0, -2.5]),
                    st.booleans())
catalogues = st.dictionaries(st.sampled_from([f"i{j}" for j in range(12)]),
                             st.dictionaries(names, scalars, max_size=3), max_size=12)
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.0, -2.5]))
conditions = st.one_of(
    scalars,
    st.dictionaries(st.sampled_from(["eq", "ne"]), scalars, min_size=1),
    st.dictionaries(st.sampled_from(["in", "not_in"]), st.lists(scalars, max_size=4), min_size=1),
    st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte"]), numbers, min_size=1, max_size=2))
filter_docs = st.dictionaries(names, conditions, min_size=1, max_size=3)


def _same(a, b) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and isinstance(a, str) == isinstance(b, str) and a == b


def _reference(attributes: dict, doc: dict) -> bool:
    """The rules of streamrec.ranking.filters, one item at a time."""
    for name, condition in doc.items():
        ops = condition if isinstance(condition, dict) else {"eq": condition}
        for op, operand in ops.items():
            has = name in attributes
            value = attributes.get(name)
            number = has and not isinstance(value, (bool, str))
            ok = {"eq": lambda: has and _same(value, operand), "ne": lambda: not (has and _same(value, operand)),
                  "in": lambda: has and any(_same(value, o) for o in operand),
                  "not_in": lambda: not (has and any(_same(value, o) for o in operand)),
                  "gt": lambda: number and value > operand, "gte": lambda: number and value >= operand,
                  "lt": lambda: number and value < operand, "lte": lambda: number and value <= operand}[op]()
            if not ok:
                return False
    return True


@hsettings(max_examples=400, deadline=None)
@given(first=catalogues, then=catalogues, doc=filter_docs)
def test_the_filter_agrees_with_the_rules_item_by_item(first, then, doc):
    catalogue = _catalogue(first)
    for item_id, attributes in then.items():      # replacements: attributes change, appear and vanish
        catalogue.apply(item_id, Item(item_id, item_id, attributes=attributes))
    now = {**first, **then}
    f = ItemFilter.build(catalogue, attributes=parse_filters(doc))
    ids = sorted(now) + ["unknown"]
    expected = [i for i in ids if _reference(now.get(i, {}), doc)]
    assert [i for i in ids if f.allows(i)] == expected
    bounded = f.bounded_ids()
    if bounded is not None:
        assert sorted(bounded) == [i for i in expected if i != "unknown"]
        assert "unknown" not in expected


def test_the_store_keeps_one_slot_per_item_and_attribute():
    store = ItemAttributes()
    for round_ in range(50):
        store.set("a", {"price": round_})
    assert store.equal_rows("price", [49]).tolist() == [0] and store.equal_rows("price", [48]).size == 0
    assert store._columns["price"].used == 1
