"""The model version serving answers from, swapped atomically when a new one arrives.

A :class:`ModelBundle` is immutable: version, faiss index (with ids and vectors), the user
encoder when the model ships one. Loading a version, verifying its checksum, building the
faiss index and the user encoder all run in a single worker thread, off the event loop; the
swap is then one reference assignment on the loop. A request reads ``holder.current`` once
and uses that bundle to the end, so requests in flight during a swap finish on the version
they started with and none fails.

Before any model is published, the bundle is *version 0*: an index over the deterministic
item vectors (:class:`~streamrec.state.item_vectors.ItemVectors`) of every item seen in the
catalogue or in events, rebuilt at most every ``serving_index_refresh_s`` while new items
appear. Once a model is loaded, the index holds exactly the model's items (new catalogue
items become retrievable when the learner publishes their content vectors), and the
replica's :class:`ItemVectors` adopt the model's vectors, as the streams worker's do.

The user vector: when the model ships a user encoder
(:func:`learner.model.user_encoder_from_snapshot`), it is computed from the freshest
``UserState.recent``; otherwise (no encoder, the learner's module missing, or an encoder
error) the online ``UserState.vector`` is used.

Experiment arms may pin an older version (:meth:`ModelHolder.pin`): it is loaded with the
same checks and kept beside the current one while an arm names it; :meth:`ModelHolder.bundle_for`
gives a request its arm's bundle.
"""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving import metrics
from serving.state_replica import StateReplica
from streamrec.kafka.model_follower import load_announced, refusal_reason
from streamrec.contracts.model_store import Announcement, LoadPolicy, Snapshot
from streamrec.ranking.retrieval import VectorIndex
from streamrec.ranking.user_encoder import user_encoder_from_snapshot
from streamrec.settings import Settings

log = logging.getLogger(__name__)

KEEP_ANNOUNCEMENTS = 5


@dataclass(frozen=True)
class ModelBundle:
    """Everything one request needs from a model version; never mutated after creation."""

    version: int
    created_at: float
    index: VectorIndex
    user_encoder: Any | None
    loaded_at: float
    published: bool        # False for the version-0 index over deterministic vectors

    @property
    def ids(self) -> tuple[str, ...]:
        return self.index.ids

    @property
    def vectors(self) -> np.ndarray:
        return self.index.vectors


class ModelHolder:
    """Holds the current :class:`ModelBundle`; loads and builds new ones off the loop."""

    def __init__(self, settings: Settings, replica: StateReplica):
        self.settings = settings
        self.replica = replica
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="index-build")
        self.current: ModelBundle = self._bundle_from(0, time.time(), [], np.zeros((0, settings.vector_dim),
                                                                                 np.float32), None, False)
        self.last_error: str | None = None
        self._pre_model_size = 0
        self.policy = LoadPolicy.from_settings(settings)
        # The last few versions that loaded and passed every check (checked again on
        # activation): the rollback targets. A refused announcement never gets in here.
        self.announcements: dict[int, Announcement] = {}
        # Versions experiment arms pin (serving.experiments): loaded with every check and kept,
        # whatever the current version becomes, while an arm names them.
        self.pinned: dict[int, ModelBundle] = {}
        self._pinning: dict[int, asyncio.Future] = {}

    def _bundle_from(self, version: int, created_at: float, ids, vectors, encoder, published: bool) -> ModelBundle:
        s = self.settings
        index = VectorIndex.build(ids, vectors, hnsw_threshold=s.serving_hnsw_threshold,
                                  hnsw_m=s.serving_hnsw_m, ef_search=s.serving_hnsw_ef_search)
        return ModelBundle(version, created_at, index, encoder, time.time(), published)

    def _build_published(self, snapshot: Snapshot) -> ModelBundle:
        started = time.perf_counter()
        encoder = None
        try:
            encoder = user_encoder_from_snapshot(snapshot)
        except Exception as exc:   # a broken encoder must not block the item vectors
            log.error("model version %s: user encoder unusable, using the online vector: %s",
                      snapshot.version, exc)
            metrics.MODEL_ERRORS.labels("encoder").inc()
        bundle = self._bundle_from(snapshot.version, snapshot.created_at, snapshot.item_ids,
                                   snapshot.item_vectors, encoder, True)
        metrics.INDEX_BUILD_SECONDS.observe(time.perf_counter() - started)
        return bundle

    async def install(self, snapshot: Snapshot, announcement: Announcement | None = None) -> ModelBundle | None:
        """Build ``snapshot``'s bundle in the worker thread, then swap it in. None if rejected."""
        dim = snapshot.item_vectors.shape[1] if snapshot.item_vectors.ndim == 2 else -1
        loop = asyncio.get_running_loop()
        try:
            bundle = await loop.run_in_executor(self._executor, self._build_published, snapshot)
        except Exception as exc:
            self.reject(announcement, f"index build failed: {exc}", "build")
            return None
        if dim != self.settings.vector_dim and bundle.user_encoder is None:
            # The online user vectors live in settings.vector_dim: they cannot query this index.
            self.reject(announcement, f"dim {dim} != STREAMREC_VECTOR_DIM {self.settings.vector_dim} "
                                      "and no user encoder", "dim_mismatch")
            return None
        if dim == self.settings.vector_dim:
            self.replica.item_vectors.replace(snapshot.item_ids, snapshot.item_vectors, snapshot.version)
        self.swap(bundle)
        if announcement is not None:
            self.remember(announcement)
        log.info("serving model version %s (%d items, %s index, user encoder: %s)", bundle.version,
                 len(bundle.index), bundle.index.kind, "yes" if bundle.user_encoder is not None else "no")
        return bundle

    def remember(self, announcement: Announcement) -> None:
        """Keep ``announcement``, a version that loaded, among the last few (what the admin API may activate)."""
        self.announcements[announcement.version] = announcement
        while len(self.announcements) > KEEP_ANNOUNCEMENTS:
            self.announcements.pop(min(self.announcements))

    async def activate(self, announcement: Announcement) -> ModelBundle:
        """Load ``announcement`` again (every check of :attr:`policy`) and serve it: promote or roll back.

        Raises :class:`~streamrec.contracts.model_store.ModelRefused` (``ChecksumMismatch`` when the file
        is not exactly the one announced) and keeps the current version.
        """
        try:
            snapshot = await load_announced(announcement, self.policy)
        except Exception as exc:
            self.reject(announcement, str(exc), refusal_reason(announcement, exc))
            raise
        bundle = await self.install(snapshot, announcement)
        if bundle is None:
            raise ValueError(self.last_error or "version not usable")
        return bundle

    async def pin(self, announcement: Announcement) -> ModelBundle:
        """Keep ``announcement``'s version loaded for the experiment arms that pin it; nothing is swapped.

        The version is loaded through every check of :attr:`policy` (the current bundle is
        reused when it is that very file). Raises like :meth:`activate` when it cannot be used.
        """
        version = announcement.version
        if version in self.pinned:
            return self.pinned[version]
        if version not in self._pinning:
            self._pinning[version] = asyncio.ensure_future(self._load_pinned(announcement))
        try:
            bundle = await asyncio.shield(self._pinning[version])
        finally:
            if self._pinning.get(version) is not None and self._pinning[version].done():
                del self._pinning[version]
        self.pinned[version] = bundle
        return bundle

    async def _load_pinned(self, announcement: Announcement) -> ModelBundle:
        current, known = self.current, self.announcements.get(announcement.version)
        if current.published and current.version == announcement.version and known is not None \
                and known.sha256 == announcement.sha256:
            return current
        snapshot = await load_announced(announcement, self.policy)
        bundle = await asyncio.get_running_loop().run_in_executor(self._executor, self._build_published, snapshot)
        if bundle.index.dim != self.settings.vector_dim and bundle.user_encoder is None:
            raise ValueError(f"dim {bundle.index.dim} != STREAMREC_VECTOR_DIM {self.settings.vector_dim} "
                             "and no user encoder")
        return bundle

    def bundle_for(self, version: int | None) -> ModelBundle:
        """The pinned bundle of ``version``; the current one for None or a version not (yet) loaded."""
        return self.current if version is None else self.pinned.get(version, self.current)

    def keep_pinned(self, versions: set[int]) -> None:
        """Release every pinned version not in ``versions`` (no arm names it any more)."""
        for version in [v for v in self.pinned if v not in versions]:
            del self.pinned[version]

    def swap(self, bundle: ModelBundle) -> None:
        self.current = bundle   # one reference assignment: the atomic swap
        metrics.MODEL_VERSION.set(bundle.version)
        metrics.MODEL_CREATED.set(bundle.created_at)
        metrics.INDEX_ITEMS.set(len(bundle.index))
        metrics.MODEL_SWAPS.labels("model" if bundle.published else "pre_model").inc()

    def reject(self, announcement: Announcement | None, reason: str, kind: str) -> None:
        version = announcement.version if announcement is not None else "?"
        self.last_error = f"version {version}: {reason}"
        log.error("model version %s not used, keeping version %s: %s", version, self.current.version, reason)
        metrics.MODEL_ERRORS.labels(kind).inc()

    async def refresh_pre_model(self) -> bool:
        """Before any model: rebuild the index when items appeared. True if it swapped."""
        if self.current.published:
            return False
        vectors = self.replica.item_vectors
        n = len(vectors)
        if n == self._pre_model_size:
            return False
        # Copy on the loop thread: the matrix may be reallocated while the worker builds.
        ids, matrix = list(vectors.ids[:n]), vectors.matrix[:n].copy()
        self._pre_model_size = n
        loop = asyncio.get_running_loop()
        bundle = await loop.run_in_executor(self._executor, self._bundle_from, 0, time.time(), ids, matrix,
                                            None, False)
        if self.current.published:   # a model arrived while this was building: it wins
            return False
        self.swap(bundle)
        return True

    async def run_pre_model_refresh(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh_pre_model()
            except Exception:
                log.exception("pre-model index refresh failed")
            try:
                await asyncio.wait_for(stop.wait(), self.settings.serving_index_refresh_s)
            except asyncio.TimeoutError:
                pass

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
