"""What each process exports to Prometheus, read from its metrics module.

Each process declares its metrics in one module (``streams.metrics``, ``learner.metrics``,
``serving.metrics``). This file imports those modules and lists what they export — names,
types, labels, help strings and the sample names Prometheus will see — so the operations
documentation (:func:`metric_table`) and the checks on the Grafana dashboard and alert rules
come from the code itself and cannot drift from it.

Prometheus sample names differ from declared names by type: a counter ``x`` is scraped as
``x_total`` (and ``x_created``); a histogram as ``x_bucket``, ``x_sum`` and ``x_count``.

Examples
--------
>>> from prometheus_client import Counter, CollectorRegistry
>>> reg = CollectorRegistry()
>>> c = Counter("streamrec_demo_things", "Things done.", ["kind"], registry=reg)
>>> info = describe_collector(c)[0]
>>> info.name, info.type, info.labels, info.samples
('streamrec_demo_things', 'counter', ('kind',), ('streamrec_demo_things_total', 'streamrec_demo_things_created'))
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Iterable, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

import learner.metrics
import serving.metrics
import streams.metrics

# process -> the module that declares its metrics
PROCESS_METRIC_MODULES: dict[str, ModuleType] = {
    "streams": streams.metrics,
    "learner": learner.metrics,
    "serving": serving.metrics,
}

_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}


@dataclass(frozen=True)
class MetricInfo:
    """One exported metric family."""

    process: str
    name: str              # family name (a counter's without ``_total``)
    type: str              # counter, gauge, histogram, summary, info, ...
    help: str
    labels: tuple[str, ...]
    samples: tuple[str, ...]  # the sample names a scrape shows

    @property
    def exposed_name(self) -> str:
        """The name to query: ``x_total`` for counters, the family name otherwise."""
        return self.name + "_total" if self.type == "counter" else self.name


def describe_collector(collector, process: str = "") -> list[MetricInfo]:
    """The metric families one prometheus_client collector exports (samples or not)."""
    labels = tuple(getattr(collector, "_labelnames", ()) or ())
    if isinstance(collector, MetricWrapperBase):
        families = collector.describe()
    else:
        families = list(collector.collect())
    out = []
    for family in families:
        fam_labels = labels
        if not fam_labels and getattr(family, "samples", None):
            names = {k for s in family.samples for k in s.labels if k not in ("le", "quantile")}
            fam_labels = tuple(sorted(names))
        suffixes = _SAMPLE_SUFFIXES.get(family.type, ("",))
        out.append(MetricInfo(process=process, name=family.name, type=family.type,
                              help=family.documentation, labels=fam_labels,
                              samples=tuple(family.name + s for s in suffixes)))
    return out


def module_metrics(module: ModuleType, process: str = "") -> list[MetricInfo]:
    """Every metric a module declares at top level (metric objects and registries)."""
    seen: set[int] = set()
    found: dict[str, MetricInfo] = {}
    for value in vars(module).values():
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, MetricWrapperBase):
            infos = describe_collector(value, process)
        elif isinstance(value, CollectorRegistry) and value is not _default_registry():
            infos = [info for collector in list(value._collector_to_names)  # noqa: SLF001
                     for info in describe_collector(collector, process)]
        else:
            continue
        for info in infos:
            found.setdefault(info.name, info)
    return sorted(found.values(), key=lambda m: m.name)


def _default_registry() -> CollectorRegistry:
    from prometheus_client import REGISTRY

    return REGISTRY


def process_metrics(modules: Mapping[str, ModuleType] = PROCESS_METRIC_MODULES) -> dict[str, list[MetricInfo]]:
    """``{process: [MetricInfo, ...]}`` for every process's metrics module."""
    return {process: module_metrics(module, process) for process, module in modules.items()}


def exported_sample_names(catalogue: Mapping[str, Iterable[MetricInfo]] | None = None) -> set[str]:
    """Every sample name the processes export (what a PromQL selector may name)."""
    catalogue = process_metrics() if catalogue is None else catalogue
    return {s for infos in catalogue.values() for info in infos for s in info.samples}


def metric_table(catalogue: Mapping[str, Iterable[MetricInfo]] | None = None) -> str:
    """The Markdown table of every exported metric: process, name, type, labels, meaning."""
    catalogue = process_metrics() if catalogue is None else catalogue
    rows = ["| process | metric | type | labels | meaning |", "|---|---|---|---|---|"]
    for process, infos in catalogue.items():
        for info in infos:
            labels = ", ".join(f"`{label}`" for label in info.labels) or "—"
            meaning = info.help.replace("|", "\\|").replace("\n", " ")
            rows.append(f"| {process} | `{info.exposed_name}` | {info.type} | {labels} | {meaning} |")
    return "\n".join(rows)
