"""The recommendation model the learner trains: an item tower and a sequence user tower (torch).

Item tower
    ``vector(item) = id_embedding[item] + W_text · minilm(item.content()) + W_ext · item.embedding``.
    The text term is a learned projection of a frozen all-MiniLM-L6-v2 embedding (the
    ``text`` extra; without it the tower uses IDs only), the ext term projects a producer-
    supplied embedding when ``learner_item_embedding_dim`` matches its length. A new item
    nobody has touched gets a useful vector from its content alone (ID rows start at zero
    when there is content, and training drops ID embeddings at random, ``learner_id_dropout``,
    so the content projection has to rank well on its own); its ID embedding then learns what
    content does not say. Tables grow (capacity doubling) without a restart. The dropout
    trade-off was measured with ``harness.learner_measure``; see docs/evaluation.md.

User tower
    A GRU over the user's most recent items, oldest first. Each step reads the item's
    vector (from the item tower, the same space retrieval uses) plus an event-type
    embedding plus a learned projection of its recency (:func:`~streamrec.ranking.user_encoder.age_feature`).
    The last hidden state is projected to ``vector_dim``. Because the input is the raw
    recent-items list, a user vector can be recomputed from the freshest state at any
    moment; serving does so with :class:`~streamrec.ranking.user_encoder.UserEncoder`, the
    same function in numpy from the published weights. Scores are dot products ``user · item``.

Examples
--------
>>> import torch
>>> m = TwoTower(dim=8, n_event_types=5, text_dim=0, capacity=4)
>>> m.items.grow(10)
True
>>> m.items.all(10).shape
torch.Size([10, 8])
"""
from __future__ import annotations


import numpy as np
import torch
from torch import nn

from streamrec.contracts.events import EVENT_TYPES
from streamrec.ranking.user_encoder import USER_PREFIX, age_feature


class ItemTower(nn.Module):
    def __init__(self, dim: int, text_dim: int = 0, ext_dim: int = 0, capacity: int = 1024, seed: int = 0):
        super().__init__()
        self.dim, self.text_dim, self.ext_dim, self.seed = dim, text_dim, ext_dim, seed
        self.id_embedding = nn.Parameter(self._init_rows(0, capacity))
        self.text_projection = nn.Linear(text_dim, dim, bias=False) if text_dim else None
        self.ext_projection = nn.Linear(ext_dim, dim, bias=False) if ext_dim else None
        self.register_buffer("text", torch.zeros(capacity, text_dim))
        self.register_buffer("ext", torch.zeros(capacity, ext_dim))

    def _init_rows(self, start: int, stop: int) -> torch.Tensor:
        if self.text_dim or self.ext_dim:
            # With content, a new item starts as exactly its content vector: the regime that ID
            # dropout trains for (see ``all``); its ID row then learns what content misses.
            return torch.zeros(stop - start, self.dim)
        # IDs only: rows drawn from a generator keyed by position, so the same growth gives the same weights.
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + start)
        return torch.randn(stop - start, self.dim, generator=g) * 0.05

    @property
    def capacity(self) -> int:
        return self.id_embedding.shape[0]

    def grow(self, n_items: int) -> bool:
        """Make room for ``n_items`` rows; True when the ID table was reallocated."""
        old = self.capacity
        if n_items <= old:
            return False
        new = max(n_items, 2 * old)
        with torch.no_grad():
            self.id_embedding = nn.Parameter(torch.cat([self.id_embedding.detach(), self._init_rows(old, new)]))
            self.text = torch.cat([self.text, torch.zeros(new - old, self.text_dim)])
            self.ext = torch.cat([self.ext, torch.zeros(new - old, self.ext_dim)])
        return True

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self._combine(self.id_embedding.index_select(0, index), self.text.index_select(0, index),
                             self.ext.index_select(0, index))

    def all(self, n_items: int, id_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors of the first ``n_items`` items.

        ``id_keep`` (training only, 0/1 per item) drops ID embeddings so the content
        projection alone must rank those items well: what a brand-new item relies on.
        """
        # Slices, not gathers: their backward is a plain copy, fast and deterministic.
        ids = self.id_embedding[:n_items]
        if id_keep is not None:
            ids = ids * id_keep.unsqueeze(1)
        return self._combine(ids, self.text[:n_items], self.ext[:n_items])

    def _combine(self, ids: torch.Tensor, text: torch.Tensor, ext: torch.Tensor) -> torch.Tensor:
        v = ids
        if self.text_projection is not None:
            v = v + self.text_projection(text)
        if self.ext_projection is not None:
            v = v + self.ext_projection(ext)
        return v


class UserTower(nn.Module):
    def __init__(self, dim: int, n_event_types: int):
        super().__init__()
        self.type_embedding = nn.Embedding(n_event_types + 1, dim, padding_idx=0)  # 0: padding / unknown
        self.recency = nn.Linear(1, dim)
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.out = nn.Linear(dim, dim)

    def forward(self, item_vectors: torch.Tensor, types: torch.Tensor, ages: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, dim) right-padded inputs and (B,) lengths -> (B, dim) user vectors."""
        x = item_vectors + self.type_embedding(types) + self.recency(age_feature(ages).unsqueeze(-1))
        out, _ = self.gru(x)
        at = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
        last = out.gather(1, at).squeeze(1)
        # The GRU is causal, so padding after a row's length never reaches its last state.
        last = torch.where((lengths > 0).unsqueeze(-1), last, torch.zeros_like(last))
        return self.out(last)


class TwoTower(nn.Module):
    def __init__(self, dim: int, n_event_types: int = len(EVENT_TYPES), text_dim: int = 0, ext_dim: int = 0,
                 capacity: int = 1024, seed: int = 0):
        super().__init__()
        # The dense layers' initialisation, seeded without disturbing the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.items = ItemTower(dim, text_dim, ext_dim, capacity, seed)
            self.users = UserTower(dim, n_event_types)

    def user_vectors(self, item_matrix: torch.Tensor, hist_items: torch.Tensor, hist_types: torch.Tensor,
                     hist_ages: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """User vectors from histories of item rows (-1: padding) given the current item matrix."""
        padded = torch.cat([item_matrix, item_matrix.new_zeros(1, item_matrix.shape[1])])
        rows = torch.where(hist_items < 0, torch.full_like(hist_items, len(item_matrix)), hist_items)
        inputs = padded.index_select(0, rows.reshape(-1)).view(*rows.shape, padded.shape[1])
        return self.users(inputs, hist_types, hist_ages, lengths)

    def user_tensors(self) -> dict[str, np.ndarray]:
        """The user tower's weights as published (``user.*``) for :class:`UserEncoder`."""
        return {USER_PREFIX + k: v.detach().cpu().numpy().copy() for k, v in self.users.state_dict().items()}


__all__ = ["TwoTower", "ItemTower", "UserTower"]
