"""The learner's checkpoint: everything a restart needs to resume exactly where it stopped.

One safetensors file (tensors only; nothing is unpickled on load) holding the model's
parameters and buffers, the Adam moments, the replay buffer, the per-user interaction log,
the forgetting probe, the events observed since the last cycle, and JSON metadata: item
ids, consumer offsets (the *next* offset per ``topic:partition``, consistent with the state
because the trainer records them under the same lock), the published version counter and
the random generators' states. Written with :func:`streamrec.contracts.model_store.atomic_write`
(temporary file, fsync, rename), so a kill at any moment leaves the previous checkpoint.
A checkpoint resumes only under the event types it was trained with (the user tower embeds
them in declaration order): other ``STREAMREC_EVENT_WEIGHTS`` types are refused with
:class:`IncompatibleCheckpoint`, changed weights are not.

Examples
--------
>>> from streamrec.settings import Settings
>>> from learner.trainer import ContinualTrainer
>>> import tempfile, pathlib
>>> t = ContinualTrainer(Settings(learner_use_text=False))
>>> path = pathlib.Path(tempfile.mkdtemp()) / "learner.safetensors"
>>> save_checkpoint(path, t, version=3)
>>> restored, version = load_checkpoint(path, Settings(learner_use_text=False))
>>> version
3
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from streamrec.state.dedup import DedupIndex
from learner.interaction_log import InteractionLog
from streamrec.contracts.events import EVENT_TYPES
from streamrec.contracts.model_store import atomic_write
from learner.replay_buffer import ReplayBuffer
from streamrec.settings import Settings
from streamrec.state.item_rows import ItemRows
from learner.trainer import ContinualTrainer

log = logging.getLogger(__name__)
FORMAT = 1


class IncompatibleCheckpoint(ValueError):
    pass


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array).copy())


def checkpoint_bytes(trainer: ContinualTrainer, version: int, cluster_id: str | None = None) -> bytes:
    with trainer.lock:
        tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in trainer.model.state_dict().items()}
        opt = trainer.optimizer_state
        opt_keys = {}
        for index, state in opt.get("state", {}).items():
            opt_keys[str(index)] = list(state)
            for key, value in state.items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().clone().contiguous()
        groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in opt["param_groups"]]
        buffer_arrays, buffer_meta = trainer.buffer.state_arrays()
        tensors.update({f"buffer.{k}": _t(v) for k, v in buffer_arrays.items()})
        log_arrays, log_meta = trainer.log.state_arrays()
        tensors.update({f"log.{k}": _t(v) for k, v in log_arrays.items()})
        if trainer.probe is not None:
            tensors.update({f"probe.{k}": _t(v) for k, v in trainer.probe.items()})
        if trainer.pending:
            pending = {k: np.concatenate([p[k] for p in trainer.pending]) for k in trainer.pending[0]}
            tensors.update({f"pending.{k}": _t(v) for k, v in pending.items()})
        tensors["item_counts"] = _t(trainer.item_counts)
        meta = {
            "format": FORMAT, "version": version, "generation": trainer.generation,
            "events_seen": trainer.events_seen, "offsets": trainer.offsets,
            # The cluster those offsets index: on another cluster they point into nothing.
            "cluster_id": cluster_id,
            "event_ids": trainer.event_ids.state(),
            "item_ids": trainer.item_ids,
            "content_keys": [trainer._content_keys.get(i) for i in trainer.item_ids],
            "optimizer": {"param_groups": groups, "state_keys": opt_keys},
            "buffer": buffer_meta, "log": log_meta, "rng": json.dumps(trainer.rng.bit_generator.state),
            "shape": _shape(trainer),
            "event_types": list(trainer.semantics.types),   # the type embedding's rows, in order
        }
    return st_save(tensors, metadata={"streamrec": json.dumps(meta)})


def _shape(trainer: ContinualTrainer) -> dict:
    items = trainer.model.items
    return {"dim": items.dim, "text_dim": items.text_dim, "ext_dim": items.ext_dim,
            "sequence_length": trainer.sequence_length}


def save_checkpoint(path: str | Path, trainer: ContinualTrainer, version: int,
                    cluster_id: str | None = None) -> None:
    """Write the checkpoint atomically; ``cluster_id`` names the Kafka cluster its offsets belong to."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, checkpoint_bytes(trainer, version, cluster_id))


def stale_offsets(offsets: dict[str, int], topic: str, ends: dict[int, int],
                  cluster_then: str | None, cluster_now: str | None) -> dict[str, str]:
    """The checkpoint offsets of ``topic`` that point into a log the broker no longer has.

    A restart against a broker that lost its data (the in-memory embedded broker, a topic
    deleted and recreated) would otherwise resume at old positions and skip every new event
    below them. With another cluster id than the one recorded, no offset refers to this
    log, even where the new log has grown past it; on the same cluster an offset beyond
    its partition's end (``ends``: partition -> high watermark) cannot be a real position.

    Returns
    -------
    dict
        ``"topic:partition"`` -> why it is stale; empty when every offset can be trusted.

    Examples
    --------
    >>> stale_offsets({"ev:0": 120, "ev:1": 7}, "ev", {0: 18, 1: 9}, "c1", "c1")
    {'ev:0': 'checkpoint offset 120 beyond the end 18'}
    >>> sorted(stale_offsets({"ev:0": 5}, "ev", {0: 18}, "c1", "c2").values())
    ['checkpoint from cluster c1, broker is c2']
    """
    mine = {k: v for k, v in offsets.items() if k.rsplit(":", 1)[0] == topic}
    if mine and cluster_then and cluster_now and cluster_then != cluster_now:
        return {k: f"checkpoint from cluster {cluster_then}, broker is {cluster_now}" for k in mine}
    stale = {}
    for key, resume in mine.items():
        end = ends.get(int(key.rsplit(":", 1)[1]))
        if end is not None and resume > end:
            stale[key] = f"checkpoint offset {resume} beyond the end {end}"
    return stale


def checkpoint_cluster_id(path: str | Path) -> str | None:
    """The cluster id recorded with a checkpoint's offsets (None: not recorded, or no checkpoint)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            return _header_metadata(n.to_bytes(8, "little") + f.read(n)).get("cluster_id")
    except (OSError, ValueError, KeyError):
        return None


def _header_metadata(data: bytes) -> dict:
    n = int.from_bytes(data[:8], "little")
    return json.loads(json.loads(data[8:8 + n])["__metadata__"]["streamrec"])


def load_checkpoint(path: str | Path, settings: Settings, encoder=None) -> tuple[ContinualTrainer, int]:
    """Rebuild the trainer saved at ``path``; returns it and the last published version."""
    data = Path(path).read_bytes()
    meta = _header_metadata(data)
    # Fresh (aligned) copies: SIMD kernels may round differently on unaligned views of the file.
    tensors = {k: v.clone() for k, v in st_load(data).items()}
    trainer = ContinualTrainer(settings, encoder=encoder)
    if meta.get("format") != FORMAT or meta["shape"] != _shape(trainer):
        raise IncompatibleCheckpoint(f"{path}: checkpoint shape {meta.get('shape')} does not match the "
                                     f"configured model {_shape(trainer)}")
    saved_types = meta.get("event_types", list(EVENT_TYPES))   # written since event semantics exist
    if saved_types != list(trainer.semantics.types):
        raise IncompatibleCheckpoint(f"{path}: the checkpoint's model embeds the event types {', '.join(saved_types)}; "
                                     f"STREAMREC_EVENT_WEIGHTS declares {', '.join(trainer.semantics.types)} (move the "
                                     "checkpoint away to train a model for them from the start)")
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    items = trainer.model.items
    items.id_embedding = torch.nn.Parameter(torch.empty_like(model_state["items.id_embedding"]))
    items.text = torch.empty_like(model_state["items.text"])
    items.ext = torch.empty_like(model_state["items.ext"])
    trainer.model.load_state_dict(model_state)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()}
              for g in meta["optimizer"]["param_groups"]]
    state = {int(i): {key: tensors[f"optim.{i}.{key}"] for key in keys}
             for i, keys in meta["optimizer"]["state_keys"].items()}
    trainer.optimizer_state = {"state": state, "param_groups": groups}

    def arrays(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix):]: v.numpy().copy() for k, v in tensors.items() if k.startswith(prefix)}

    trainer.buffer = ReplayBuffer.from_state(arrays("buffer."), meta["buffer"])
    trainer.log = InteractionLog.from_state(arrays("log."), meta["log"])
    probe = arrays("probe.")
    trainer.probe = probe or None
    pending = arrays("pending.")
    trainer.pending = [pending] if pending else []
    trainer.pending_count = len(pending["target"]) if pending else 0
    trainer.item_counts = tensors["item_counts"].numpy().copy()
    trainer.set_item_rows(ItemRows(meta["item_ids"]))
    trainer._content_keys = {i: k for i, k in zip(trainer.item_ids, meta["content_keys"]) if k}
    trainer.generation, trainer.events_seen = int(meta["generation"]), int(meta["events_seen"])
    trainer.offsets = {str(k): int(v) for k, v in meta["offsets"].items()}
    trainer.event_ids = DedupIndex.from_state(meta.get("event_ids", {}), settings.dedup_ids)
    trainer.rng.bit_generator.state = json.loads(meta["rng"])
    trainer._matrix = None
    log.info("resumed from %s: version %d, %d items, %d users, %d events seen", path, meta["version"],
             len(trainer.item_ids), len(trainer.log), trainer.events_seen)
    return trainer, int(meta["version"])
