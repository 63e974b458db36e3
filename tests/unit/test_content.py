"""Content vectors: a new item nobody has touched is retrievable from its content alone."""
import numpy as np
import pytest

from streamrec.contracts.events import Event
from streamrec.contracts.items import Item
from learner.trainer import ContinualTrainer
from tests.learner_helpers import small_settings

pytest_plugins = ["tests.fixtures_learner"]

NEW = Item("toy-story-3", "Toy Story 3 (2010)", text="Released 18-Jun-2010.",
           tags=("Animation", "Children's", "Comedy"))


def family(item: Item) -> bool:
    return "Toy Story" in item.title or "Animation" in item.tags


def test_minilm_neighbours_of_a_new_title_are_related(ml100k, text_encoder):
    vectors = text_encoder.encode([it.content() for it in ml100k.items])
    assert vectors.shape == (len(ml100k.items), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    query = text_encoder.encode([NEW.content()])[0]
    top = np.argsort(-(vectors @ query))[:10]
    titles = [ml100k.items[j].title for j in top]
    assert "Toy Story (1995)" in titles, titles
    assert sum(family(ml100k.items[j]) for j in top) >= 5, titles


def test_encoder_cache_makes_re_encoding_a_lookup(text_encoder, tmp_path):
    from learner.content_encoder import ContentEncoder

    first = ContentEncoder(cache_dir=tmp_path)
    a = first.encode(["Heat (1995). Action, Crime", ""])
    assert not a[1].any()  # empty content: no text signal
    again = ContentEncoder(cache_dir=tmp_path)
    assert len(again) == 1
    np.testing.assert_array_equal(again.encode(["Heat (1995). Action, Crime"])[0], a[0])


def test_untouched_new_item_is_retrieved_by_its_content_vector(ml100k, text_encoder):
    trainer = ContinualTrainer(small_settings(learner_use_text=True), ml100k.items, encoder=text_encoder)
    events = [Event(u, i, "rating", float(t)) for u, i, t in
              zip(ml100k.user_ids[:4000], ml100k.item_ids[:4000], ml100k.timestamps[:4000])]
    for start in range(0, len(events), 1000):
        trainer.observe(events[start:start + 1000])
        if trainer.should_train():
            trainer.train_cycle()
    assert trainer.generation >= 1
    assert trainer.add_items([NEW]) == ["toy-story-3"]   # no event ever mentions it
    ids, vectors = trainer.item_vectors()
    by_id = {it.item_id: it for it in ml100k.items}
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    row = ids.index("toy-story-3")
    neighbours = [ids[j] for j in np.argsort(-(unit @ unit[row])) if j != row][:20]
    related = [by_id[i].title for i in neighbours if family(by_id[i])]
    base_rate = np.mean([family(it) for it in ml100k.items])   # ~3% of the catalogue
    assert len(related) >= 4, (related, [by_id[i].title for i in neighbours])
    assert len(related) / 20 > 3 * base_rate
    # Content personalises it: an animation fan ranks it far higher than a horror fan does.
    t0 = float(ml100k.timestamps[4000])
    horror = [it.item_id for it in ml100k.items if "Horror" in it.tags and not family(it)][:5]

    def rank_for(liked: list[str]) -> int:
        history = [(i, "rating", t0 + k) for k, i in enumerate(liked)]
        ranked = [i for i, _ in trainer.recommend(history, k=len(ids), exclude=liked)]
        return ranked.index("toy-story-3")

    fan = rank_for(["1", "71", "95", "99", "588"])   # Toy Story, Lion King, Aladdin, Snow White, Beauty and the Beast
    assert fan < 0.1 * len(ids), fan
    assert fan < rank_for(horror)
