"""Writes deploy/grafana/dashboards/streamrec.json, the provisioned Grafana dashboard.

The dashboard is data: edit the panel list below, run ``python deploy/grafana/make_dashboard.py``
and commit both files. tests/unit/test_deploy.py checks that every PromQL expression in the
result names only metrics the processes export.
"""
from __future__ import annotations

import json
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "streamrec-prometheus"}  # = provisioning/datasources

# Metrics the issue asks for that no process exports yet: panels naming them are left out of
# the dashboard until they exist (test_deploy fails once one appears, to have it put back).
# Serving feeds them with streamrec.observability.online_metrics.OnlineQuality.
AWAITING: set[str] = set()  # metrics a panel may name before any process exports them
OUT = Path(__file__).resolve().parent / "dashboards" / "streamrec.json"


def q(expr: str, legend: str = "") -> dict:
    return {"expr": expr, "legendFormat": legend}


def p99_p50(histogram: str, by: str = "", where: str = "") -> list[dict]:
    group = f"le, {by}" if by else "le"
    label = f"{{{{{by}}}}} " if by else ""
    sel = f"{histogram}_bucket{{{where}}}" if where else f"{histogram}_bucket"
    return [q(f"histogram_quantile({v}, sum by ({group}) (rate({sel}[5m])))", f"{label}p{int(v * 100)}")
            for v in (0.5, 0.99)]


# (title, kind, unit, targets, description); kind: timeseries | stat; None = a row header
PANELS: list = [
    ("Processes", None),
    ("Processes up", "stat", "none",
     [q('sum by (job) (up{job=~"streamrec-.*"})', "{{job}}")],
     "Scrape targets answering /metrics, per job. Streams workers are found through Docker DNS."),
    ("Model version in use", "stat", "none",
     [q("max(streamrec_learner_model_version)", "learner published"),
      q("max(streamrec_serving_model_version)", "serving"),
      q("min(streamrec_streams_model_version)", "streams (oldest worker)")],
     "Newest version the learner published and the version each consumer uses; they should agree."),
    ("Model age", "stat", "s",
     [q("time() - max(streamrec_serving_model_created_timestamp_seconds > 0)", "serving"),
      q("min(streamrec_learner_model_age_seconds)", "learner newest")],
     "Seconds since the version serving answers with, and the learner's newest, were created."),

    ("Streams: events", None),
    ("Events consumed / applied", "timeseries", "ops",
     [q("sum(rate(streamrec_streams_events_consumed_total[1m]))", "consumed"),
      q("sum(rate(streamrec_streams_events_applied_total[1m]))", "applied"),
      q("sum(rate(streamrec_streams_messages_total[1m]))", "Kafka messages")],
     "Events per second across all streams workers (packed messages count each element)."),
    ("Events rejected (dead-lettered) by reason", "timeseries", "ops",
     [q("sum by (reason) (rate(streamrec_streams_events_rejected_total[5m]))", "{{reason}}")],
     "Invalid input sent to events-dlq, by reason. Anything sustained here is a producer bug."),
    ("Events skipped (duplicates, replays)", "timeseries", "ops",
     [q("sum by (cause) (rate(streamrec_streams_events_skipped_total[5m]))", "{{cause}}")],
     "Events not applied twice: redelivery after a restart or a repeated event_id."),
    ("Consumer lag per partition", "timeseries", "short",
     [q("sum by (topic, partition) (streamrec_streams_consumer_lag_messages)", "{{topic}}/{{partition}}")],
     "Messages behind the high watermark. Growing lag: workers cannot keep up (scale streams)."),
    ("Broker append → applied latency", "timeseries", "s",
     p99_p50("streamrec_streams_apply_latency_seconds"),
     "Time from the broker's append of an event's message to its application to user state."),
    ("Event time → applied", "timeseries", "s",
     p99_p50("streamrec_streams_event_time_lag_seconds"),
     "Wall clock at application minus the event's own timestamp (large while old data is replayed)."),
    ("Users held per worker", "timeseries", "short",
     [q("sum by (instance) (streamrec_streams_users)", "{{instance}}")],
     "Users with state on each worker; uneven numbers mean uneven partitions."),

    ("Learner", None),
    ("Training loss", "timeseries", "none",
     [q("streamrec_learner_training_loss", "loss")],
     "Loss of the last mini-batch of the newest training cycle."),
    ("Gate decisions", "timeseries", "short",
     [q("sum by (decision) (increase(streamrec_learner_gate_decisions_total[15m]))", "{{decision}}")],
     "Candidates accepted or refused by the evaluation gate in the last 15 minutes."),
    ("Replay buffer fill", "timeseries", "percentunit",
     [q("max by (store) (streamrec_learner_replay_buffer_fill_ratio)", "{{store}}")],
     "Examples held / capacity of the replay reservoir and of the recent window."),
    ("Held-out and forgetting-probe accuracy", "timeseries", "percentunit",
     [q("streamrec_learner_newest_version_hr10", "newest version HR@10"),
      q("streamrec_learner_newest_version_ndcg10", "newest version NDCG@10"),
      q("streamrec_learner_gate_score{model=\"candidate\",metric=\"ndcg10\"}", "last candidate NDCG@10"),
      q("streamrec_learner_forgetting_probe_hr10", "forgetting probe HR@10")],
     "Gate scores on the newest held-out events, and the fixed older probe that shows forgetting."),
    ("Live HR@10 (prequential) and drift", "timeseries", "percentunit",
     [q("streamrec_learner_live_hr10", "live HR@10 (ADWIN)"),
      q("sum(rate(streamrec_learner_prequential_hits_total[15m])) "
        "/ sum(rate(streamrec_learner_prequential_scored_total[15m]))", "prequential HR@10 (15m)"),
      q("increase(streamrec_learner_drift_detections_total[1h])", "drift detections (1h)")],
     "Each event ranked by the current model before it learns from it; ADWIN flags drops."),
    ("Training cycles and published versions", "timeseries", "short",
     [q("sum by (trigger) (increase(streamrec_learner_cycles_total[15m]))", "cycles: {{trigger}}"),
      q("sum by (kind) (increase(streamrec_learner_versions_published_total[15m]))", "published: {{kind}}")],
     "Cycles by trigger (count, time, drift) and versions published by kind (trained, catalogue)."),
    ("Training cycle duration", "timeseries", "s",
     p99_p50("streamrec_learner_cycle_duration_seconds"),
     "Wall time of one training cycle (fine-tuning, gate evaluation, publish)."),
    ("Learner input", "timeseries", "ops",
     [q("sum(rate(streamrec_learner_events_total[1m]))", "events"),
      q("sum(rate(streamrec_learner_invalid_messages_total[5m]))", "invalid"),
      q("sum(rate(streamrec_learner_kafka_errors_total[5m]))", "Kafka errors")],
     "Valid events the learner consumes, invalid messages it skips, Kafka errors it retries."),

    ("Serving", None),
    ("Requests by path and outcome", "timeseries", "reqps",
     [q("sum by (path, outcome) (rate(streamrec_serving_requests_total[1m]))", "{{path}} {{outcome}}")],
     "Recommendation requests per second over HTTP and the request topic, by outcome."),
    ("Request latency p50 / p99 by path", "timeseries", "s",
     p99_p50("streamrec_serving_request_latency_seconds", by="path", where='route!="events"'),
     "Time to answer one request, by path (http, topic); POST /events, which waits for the broker, "
     "is left out."),
    ("Online HR@10 / NDCG@10", "timeseries", "percentunit",
     [q("avg(streamrec_serving_online_hit_rate)", "HR@10"),
      q("avg(streamrec_serving_online_ndcg)", "NDCG@10")],
     "Served lists scored against each user's next event, over a sliding window of live traffic."),
    ("Exposure entropy", "timeseries", "none",
     [q("avg(streamrec_serving_exposure_entropy_bits)", "entropy (bits)")],
     "Shannon entropy of item exposure over a sliding window of served lists."),
    ("Exposure Gini / catalogue coverage", "timeseries", "percentunit",
     [q("avg(streamrec_serving_exposure_gini)", "Gini"),
      q("avg(streamrec_serving_catalogue_coverage_ratio)", "coverage")],
     "Concentration of exposure (0 even, 1 all on one item) and share of the catalogue shown."),
    ("State freshness (append → serving replica)", "timeseries", "s",
     p99_p50("streamrec_serving_freshness_lag_seconds"),
     "How stale the user state serving answers from is."),
    ("Model swaps and load errors", "timeseries", "short",
     [q("sum by (kind) (increase(streamrec_serving_model_swaps_total[15m]))", "swap {{kind}}"),
      q("sum by (reason) (increase(streamrec_serving_model_load_errors_total[15m]))", "error {{reason}}")],
     "Index swaps to new versions and announced versions that could not be used."),
    ("Index and catalogue size", "timeseries", "short",
     [q("max(streamrec_serving_index_items)", "index items"),
      q("max(streamrec_serving_catalogue_items)", "catalogue items")],
     "Items in the retrieval index and items known from the items topic."),

    ("Experiments (per arm)", None),
    ("Online HR@10 / NDCG@10 per experiment arm", "timeseries", "percentunit",
     [q("avg by (experiment, arm) (streamrec_serving_experiment_online_hit_rate)", "{{experiment}}/{{arm}} HR@10"),
      q("avg by (experiment, arm) (streamrec_serving_experiment_online_ndcg)", "{{experiment}}/{{arm}} NDCG@10")],
     "Each live arm's served lists scored against its users' next events (sliding window per arm); compare "
     "arms of one experiment, with the sample size in the panel to the right."),
    ("Requests and scored lists per experiment arm", "timeseries", "short",
     [q("sum by (experiment, arm) (rate(streamrec_serving_experiment_requests_total[1m]))",
        "{{experiment}}/{{arm}} requests/s"),
      q("sum by (experiment, arm) (streamrec_serving_experiment_scored_lists)", "{{experiment}}/{{arm}} scored lists")],
     "Traffic each arm answers and how many outcomes its HR@10 / NDCG@10 window holds."),
    ("Exposure per experiment arm", "timeseries", "percentunit",
     [q("avg by (experiment, arm) (streamrec_serving_experiment_exposure_gini)", "{{experiment}}/{{arm}} Gini"),
      q("avg by (experiment, arm) (streamrec_serving_experiment_catalogue_coverage_ratio)",
        "{{experiment}}/{{arm}} coverage")],
     "Concentration of each arm's exposure and the share of the catalogue it showed."),
    ("Exposure entropy per experiment arm", "timeseries", "none",
     [q("avg by (experiment, arm) (streamrec_serving_experiment_exposure_entropy_bits)",
        "{{experiment}}/{{arm}} entropy (bits)")],
     "Shannon entropy of each arm's item exposure over its recent served lists."),
]


def build() -> dict:
    panels, x, y, next_id = [], 0, 0, 1
    for entry in PANELS:
        if entry[1] is None:  # a row header
            if x:
                x, y = 0, y + 8
            panels.append({"id": next_id, "type": "row", "title": entry[0], "collapsed": False,
                           "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
            next_id, y = next_id + 1, y + 1
            continue
        title, kind, unit, targets, description = entry
        if any(name in t["expr"] for t in targets for name in AWAITING):
            continue
        width = 8
        if x + width > 24:
            x, y = 0, y + 8
        panel = {
            "id": next_id, "type": kind, "title": title, "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"h": 8, "w": width, "x": x, "y": y},
            "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "range": True, **t}
                        for i, t in enumerate(targets)],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}} if kind == "timeseries"
            else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                  "colorMode": "value", "graphMode": "area", "textMode": "auto"},
        }
        panels.append(panel)
        next_id, x = next_id + 1, x + width
    return {
        "uid": "streamrec-overview",
        "title": "streamrec",
        "description": "Streaming recommender: streams workers, learner, serving.",
        "tags": ["streamrec", "kafka", "recommender"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "templating": {"list": []},
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [],
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT}")
