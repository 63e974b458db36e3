"""Drift detection on the current model's live hit rate (river's ADWIN).

Every event the learner consumes is first scored by the current model (prequentially: was the
item in the user's top 10 before the model saw it?). ADWIN watches that 0/1 stream; when it
detects a change *and* the hit rate fell, a training cycle starts early instead of waiting
for the next count or timer trigger. A rise is logged but needs no retraining.

The detector is not checkpointed: after a restart it relearns its window from the stream.

Examples
--------
>>> monitor = DriftMonitor(delta=0.002)
>>> _ = [monitor.update(1.0) for _ in range(2000)]
>>> any(monitor.update(0.0) for _ in range(300))
True
>>> monitor.triggered, monitor.detections
(True, 1)
"""
from __future__ import annotations

from river import drift


class DriftMonitor:
    def __init__(self, delta: float = 0.002):
        self.enabled = delta > 0
        self.delta = delta
        self._adwin = drift.ADWIN(delta=delta) if self.enabled else None
        self.triggered = False  # a drop was detected since the last acknowledge()
        self.detections = 0

    @property
    def hit_rate(self) -> float:
        return float(self._adwin.estimation) if self.enabled else float("nan")

    def update(self, hit: float) -> bool:
        """Feed one outcome; True when this outcome revealed a drop in the hit rate."""
        if not self.enabled:
            return False
        before = self._adwin.estimation
        self._adwin.update(hit)
        if self._adwin.drift_detected and self._adwin.estimation < before:
            self.triggered = True
            self.detections += 1
            return True
        return False

    def acknowledge(self) -> None:
        self.triggered = False
