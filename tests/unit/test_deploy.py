"""The deployment files: compose validates, Grafana/Prometheus configs are well formed, and every
PromQL expression names only metrics the processes export (read from their metrics modules)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.metric_catalogue import PROCESS_METRIC_MODULES, exported_sample_names, process_metrics
from streamrec.settings import Settings

yaml = pytest.importorskip("yaml", reason="PyYAML (a dependency of the text extra) is needed to read the configs")

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamrec.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards"

METRIC_NAME = re.compile(r"\bstreamrec_[a-zA-Z0-9_:]+")
SECURITY_ENV = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
                "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CAFILE")
STREAMREC_SERVICES = ("topics", "streams", "learner", "serving")


# --- docker-compose ---------------------------------------------------------------------------

def compose_config(**env: str) -> dict:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("LOUD SKIP: the `docker-compose` binary is missing, so docker-compose.yml was NOT "
                    "validated. `make test` installs it (apt-get install -y docker-compose) when run as root; "
                    "install it and re-run.")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "STREAMREC_"))}
    proc = subprocess.run([binary, "-f", str(COMPOSE), "--profile", "demo", "--profile", "tools", "config"],
                          cwd=REPO, env={**environ, **env}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"docker-compose config failed:\n{proc.stderr}"
    return yaml.safe_load(proc.stdout)


def test_compose_validates_and_runs_the_system():
    config = compose_config()
    services = config["services"]
    for name in ("kafka", "topics", "streams", "learner", "serving", "prometheus", "grafana"):
        assert name in services, f"service {name} missing"
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "1"
    assert str(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == "1"
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "localhost:9092" in advertised and "kafka:" in advertised   # host and compose network
    # streams scales with --scale: no fixed container name or host port
    assert "container_name" not in services["streams"]
    assert not services["streams"].get("ports")
    # processes wait for the one-shot topic creation, which runs our `topics` command
    assert services["topics"]["command"][0] == "topics"
    for name in ("streams", "learner", "serving"):
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    # one models volume shared by the learner (writer) and its readers
    for name in ("streams", "learner", "serving"):
        mounts = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in services[name]["volumes"]]
        assert any(m.startswith("models:") for m in mounts), f"{name} does not mount the models volume"


def test_compose_passes_kafka_security_through_from_the_environment():
    config = compose_config(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
                            KAFKA_SASL_USERNAME="alice", KAFKA_SASL_PASSWORD="s3cret",
                            KAFKA_SSL_CAFILE="/etc/ssl/ca.pem", KAFKA_BOOTSTRAP_SERVERS="b1:9093,b2:9093")
    for name in STREAMREC_SERVICES:
        env = config["services"][name]["environment"]
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["KAFKA_SASL_USERNAME"] == "alice" and env["KAFKA_SASL_PASSWORD"] == "s3cret"
        assert env["KAFKA_SSL_CAFILE"] == "/etc/ssl/ca.pem"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "b1:9093,b2:9093"
        # and the variables are the ones Settings reads
        assert Settings.from_env(env).sasl_username == "alice"


def test_dockerfile_builds_one_non_root_image_with_cpu_torch():
    text = (REPO / "Dockerfile").read_text()
    assert "download.pytorch.org/whl/cpu" in text and "torch==2.13" in text
    assert re.search(r"pip install .*\.\[text\]", text)
    assert re.search(r"^USER (?!root)\S+", text, re.M)
    assert 'ENTRYPOINT ["streamrec"]' in text


# --- Prometheus -------------------------------------------------------------------------------

def test_prometheus_scrapes_every_process_on_its_settings_port():
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    defaults = Settings()
    streams = jobs["streamrec-streams"]
    assert streams["dns_sd_configs"][0]["names"] == ["streams"]          # every replica
    assert streams["dns_sd_configs"][0]["port"] == defaults.streams_web_port
    assert jobs["streamrec-learner"]["static_configs"][0]["targets"] == [f"learner:{defaults.learner_port}"]
    assert jobs["streamrec-serving"]["static_configs"][0]["targets"] == [f"serving:{defaults.http_port}"]
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]


def alert_rules() -> list[dict]:
    config = yaml.safe_load(ALERTS.read_text())
    return [rule for group in config["groups"] for rule in group["rules"]]


def test_alert_rules_are_well_formed():
    rules = alert_rules()
    assert len(rules) >= 10
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        assert rule["expr"].strip()
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert rule["annotations"]["summary"]


# --- Grafana ----------------------------------------------------------------------------------

def provisioned_datasource_uid() -> str:
    (source,) = [d for f in sorted(DATASOURCES.glob("*.yml"))
                 for d in yaml.safe_load(f.read_text())["datasources"] if d["type"] == "prometheus"]
    assert source["url"] == "http://prometheus:9090"
    return source["uid"]


def dashboard_panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))   # panels nested in collapsed rows
    return out


def test_dashboard_is_valid_grafana_json():
    dashboard = json.loads(DASHBOARD.read_text())
    for key in ("uid", "title", "schemaVersion", "panels"):
        assert key in dashboard
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 30
    uid = provisioned_datasource_uid()
    panels = [p for p in dashboard_panels(dashboard) if p["type"] != "row"]
    assert len(panels) >= 15
    ids = [p["id"] for p in dashboard_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["title"] and panel["type"] in ("timeseries", "stat", "gauge", "table", "bargauge")
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert panel["datasource"]["uid"] == uid
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["refId"] and target["expr"].strip()
            assert target.get("datasource", panel["datasource"])["uid"] == uid


def test_dashboard_provider_loads_the_folder_compose_mounts():
    (provider,) = yaml.safe_load(next(DASHBOARD_PROVIDERS.glob("*.yml")).read_text())["providers"]
    mounts = compose_config()["services"]["grafana"]["volumes"]
    targets = {(v["target"] if isinstance(v, dict) else v.split(":")[1]) for v in mounts}
    assert provider["options"]["path"] in targets


def test_generated_dashboard_is_up_to_date():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_dashboard", DEPLOY / "grafana" / "make_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == json.loads(DASHBOARD.read_text()), \
        "run `python deploy/grafana/make_dashboard.py` after editing it"


# --- expressions against the metrics the code exports ----------------------------------------

def all_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [(f"dashboard panel {p['title']!r}", t["expr"])
             for p in dashboard_panels(dashboard) for t in p.get("targets", [])]
    exprs += [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]
    return exprs


def test_every_expression_names_an_exported_metric():
    exported = exported_sample_names(process_metrics())
    unknown = []
    for where, expr in all_expressions():
        names = METRIC_NAME.findall(expr)
        assert names or "up{" in expr, f"{where}: {expr!r} names no metric"
        unknown += [f"{where}: {name}" for name in names if name not in exported]
    assert not unknown, "expressions name metrics no process exports:\n" + "\n".join(unknown)


def test_dashboard_covers_every_process():
    catalogue = process_metrics()
    assert set(catalogue) == set(PROCESS_METRIC_MODULES) == {"streams", "learner", "serving"}
    named = {n for _, e in all_expressions() for n in METRIC_NAME.findall(e)}
    for process, infos in catalogue.items():
        samples = {s for info in infos for s in info.samples}
        assert named & samples, f"no dashboard panel or alert uses a {process} metric"


def test_expression_check_catches_a_misspelt_metric():
    """The check above must be able to fail: a name not exported is reported."""
    catalogue = process_metrics()
    exported = exported_sample_names(catalogue)
    process = next(iter(catalogue))
    assert f"streamrec_{process}_no_such_metric_total" not in exported
    assert any(s.endswith("_total") for s in exported) or any(s.endswith("_bucket") for s in exported)


def test_expressions_parse_as_promql(tmp_path):
    """promtool (Debian's `prometheus` package), where installed, parses every expression."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus): PromQL syntax not checked")
    rules = [{"record": f"check:expr_{i}", "expr": expr} for i, (_, expr) in enumerate(all_expressions())]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}))
    for target in (path, ALERTS):
        proc = subprocess.run([promtool, "check", "rules", str(target)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_awaited_metrics_are_still_missing():
    """Panels for metrics no process exports yet are parked in make_dashboard.AWAITING; once a
    process exports one, this fails so that its panels (and alerts) are put back."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_dashboard", DEPLOY / "grafana" / "make_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    now_exported = sorted(set(module.AWAITING) & exported_sample_names())
    assert not now_exported, (
        f"{now_exported} are exported now: remove them from AWAITING in deploy/grafana/make_dashboard.py, "
        "run it, and uncomment the matching rules in deploy/prometheus/alerts.yml")
