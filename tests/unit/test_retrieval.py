"""The faiss wrapper: exact top-k, exclusion, similar items, and the switch to HNSW by size."""
import numpy as np
import pytest

from streamrec.ranking.retrieval import VectorIndex


def _vectors(n, dim=16, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_flat_index_returns_the_exact_top_k_by_inner_product():
    ids, vectors = [f"i{j}" for j in range(500)], _vectors(500)
    index = VectorIndex.build(ids, vectors)
    query = _vectors(3, seed=1)
    expected = np.argsort(-(query @ vectors.T), axis=1)[:, :10]
    got = index.search(query, k=10)
    assert index.kind == "flat"
    for q in range(3):
        assert [i for i, _ in got[q]] == [ids[j] for j in expected[q]]
        assert np.allclose([s for _, s in got[q]], (query[q] @ vectors[expected[q]].T), atol=1e-5)


def test_exclusion_is_per_query_and_still_returns_k():
    ids, vectors = [f"i{j}" for j in range(50)], _vectors(50)
    index = VectorIndex.build(ids, vectors)
    query = vectors[:2]
    plain = index.search(query, k=5)
    banned = {plain[0][0][0], plain[0][1][0]}
    got = index.search(query, k=5, exclude=[banned, set()])
    assert len(got[0]) == 5 and not banned & {i for i, _ in got[0]}
    assert got[1] == plain[1]


def test_similar_leaves_the_item_itself_out():
    ids, vectors = ["a", "b", "c"], np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    assert [i for i, _ in VectorIndex.build(ids, vectors).similar("a", k=2)] == ["b", "c"]


def test_large_catalogues_use_hnsw_with_high_recall():
    ids, vectors = [str(j) for j in range(3000)], _vectors(3000, dim=16)
    index = VectorIndex.build(ids, vectors, hnsw_threshold=1000)
    assert index.kind == "hnsw"
    query = _vectors(20, dim=16, seed=3)
    exact = np.argsort(-(query @ vectors.T), axis=1)[:, :10]
    got = index.search(query, k=10)
    recall = np.mean([len({ids[j] for j in exact[q]} & {i for i, _ in got[q]}) / 10 for q in range(20)])
    assert recall >= 0.9


def test_empty_index_and_bad_input():
    empty = VectorIndex.build([], np.zeros((0, 4), dtype=np.float32))
    assert empty.search(np.ones((1, 4), dtype=np.float32), k=3) == [[]]
    with pytest.raises(ValueError):
        VectorIndex.build(["a", "a"], np.ones((2, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        VectorIndex.build(["a"], np.full((1, 4), np.nan, dtype=np.float32))
    with pytest.raises(ValueError):
        empty.search(np.ones((1, 5), dtype=np.float32), k=1)


def test_index_is_immutable():
    index = VectorIndex.build(["a"], np.ones((1, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        index.vectors[0, 0] = 2.0
