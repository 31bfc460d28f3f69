"""deploy/monitoring: the alert rules and the Grafana dashboard, checked with promtool.

- `promtool check rules` on the plain rules file and `promtool test rules` on
  deploy/monitoring/tests/*.yaml, which must show every alert both firing and not firing;
- the PrometheusRule object carries exactly the groups of the plain file;
- the dashboard is valid JSON with a Prometheus data-source variable that every panel and query
  uses, unique panel ids, panels inside the 24-column grid and not overlapping, and every query
  parses (promtool checks them as recording rules);
- every metric the rules and the dashboard use is documented in docs/metrics.md. That each one
  (and each label they match or group on) is really exposed by the binaries is checked against
  a running controller and terminator in test_controller_e2e.py
  (test_monitoring_names_are_exposed).
"""
import glob
import json
import re
import shutil
import subprocess

import pytest
import yaml

import apiserver_fixture
import monitoring_names as M

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed "
                                    "(scripts/setup.sh installs the prometheus package)")


def promtool(*args, cwd=None):
    r = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    return r.returncode, r.stdout + r.stderr


@needs_promtool
def test_promtool_checks_the_rules():
    rc, out = promtool("check", "rules", str(M.RULES))
    assert rc == 0, out
    n = len(M.rule_exprs())
    assert "SUCCESS: %d rules found" % n in out, out


@needs_promtool
def test_promtool_unit_tests_pass():
    files = sorted(glob.glob(str(M.MON / "tests" / "*.yaml")))
    assert files
    rc, out = promtool("test", "rules", *files)
    assert rc == 0, out
    assert out.count("SUCCESS") == len(files), out


def test_every_alert_is_tested_firing_and_not_firing():
    alerts = {n for n, _ in M.rule_exprs()}
    fired, quiet = set(), set()
    for f in sorted((M.MON / "tests").glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        assert doc["rule_files"] == ["../edgecert.rules.yaml"], f
        for t in doc["tests"]:
            for a in t.get("alert_rule_test", []):
                (fired if a.get("exp_alerts") else quiet).add(a["alertname"])
    assert alerts == fired, ("alerts never shown firing", alerts - fired)
    assert alerts == quiet, ("alerts never shown quiet", alerts - quiet)
    # and the set is what docs/metrics.md describes
    doc = (M.REPO / "docs" / "metrics.md").read_text()
    for a in alerts:
        assert "`%s`" % a in doc, a


def test_prometheusrule_is_the_plain_file():
    pr = yaml.safe_load((M.MON / "prometheus-rules.yaml").read_text())
    assert pr["apiVersion"] == "monitoring.coreos.com/v1" and pr["kind"] == "PrometheusRule"
    assert pr["metadata"]["name"] == "edgecert"
    assert pr["spec"] == yaml.safe_load(M.RULES.read_text())
    for g in pr["spec"]["groups"]:
        for r in g["rules"]:
            assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
            assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]


def test_dashboard_lint():
    dash = json.loads(M.DASHBOARD.read_text())  # valid JSON
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    ref = {"type": "prometheus", "uid": "${datasource}"}
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == ref, v["name"]
    panels = list(M.all_panels(dash))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    cells = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, (p["title"], "overlaps", cells[(x, y)])
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == ref, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == ref and t["expr"].strip(), p["title"]
    # the things the dashboard is for
    text = json.dumps(dash)
    for metric in ("edgecert_certificate_expiration_timestamp_seconds",
                   "edgecert_certificate_ready_status", "edgecert_certificate_renewal_overdue",
                   "edgecert_acme_requests_total", "edgecert_tls_handshakes_total",
                   "edgecert_tls_connections", "edgecert_certificate_reloads_total",
                   "edgecert_served_certificate_not_after_timestamp_seconds"):
        assert metric in text, metric
    assert 'status=\\"429\\"' in text  # rate limits


@needs_promtool
def test_dashboard_queries_parse(tmp_path):
    """promtool has no expression checker, but it parses every rule's expr: each query becomes a
    recording rule (Grafana's $variables replaced by values first)."""
    rules = []
    for i, (where, expr) in enumerate(M.dashboard_exprs()):
        rules.append({"record": "edgecert_dashboard_check:q%d" % i,
                      "expr": M.grafana_to_promql(expr)})
    for var in M.dashboard()["templating"]["list"]:
        q = var.get("definition", "")
        m = re.match(r"label_values\((.+),\s*\w+\)$", q)
        if m:
            rules.append({"record": "edgecert_dashboard_check:var_%s" % var["name"],
                          "expr": m.group(1)})
    f = tmp_path / "dashboard.rules.yaml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    rc, out = promtool("check", "rules", str(f))
    assert rc == 0, out


def test_used_metrics_are_documented():
    doc = (M.REPO / "docs" / "metrics.md").read_text()
    uses = M.rule_exprs() + M.dashboard_exprs()
    names = set()
    for _, expr in uses:
        names |= set(M.used(expr)[0])
    assert names
    for n in sorted(names):
        assert "`%s`" % n in doc, n


def test_names_checker_finds_what_is_missing():
    """The check test_controller_e2e.py runs against live /metrics pages: it reports a metric
    that is not exposed, a label a selector matches that the metric lacks, and a grouping label
    no metric has."""
    good = M.exposed('edgecert_tls_handshakes_total{result="ok"} 1\n')
    assert good == {"edgecert_tls_handshakes_total": {"result"}}
    metrics, grouping, made = M.used(
        'sum by (secret, instance) (label_replace(edgecert_served_certificate_not_after_timestamp_seconds'
        '{instance=~".*"}, "secret", "$1", "name", "(.+)")) < on (secret) group_left () '
        'max by (secret) (edgecert_certificate_expiration_timestamp_seconds{namespace="a"})')
    assert metrics == {"edgecert_served_certificate_not_after_timestamp_seconds": {"instance"},
                       "edgecert_certificate_expiration_timestamp_seconds": {"namespace"}}
    assert grouping == {"secret", "instance"} and made == {"secret"}
    problems = M.problems(['edgecert_tls_handshakes_total{result="ok"} 1\n'])
    assert any("edgecert_certificate_expiration_timestamp_seconds is not exposed" in p
               for p in problems), problems
    # a label that does not exist on the metric
    text = "\n".join([
        'edgecert_certificate_ready_status{name="a",issuer_name="x",issuer_kind="Issuer",secret="s"} 1',
    ])
    assert any("edgecert_certificate_ready_status has no label 'condition'" in p
               for p in M.problems([text])), M.problems([text])


@pytest.mark.skipif(apiserver_fixture.kubectl_path() is None, reason="kubectl is not installed")
def test_kustomize_builds_the_monitoring_overlay():
    r = subprocess.run([apiserver_fixture.kubectl_path(), "kustomize", str(M.MON)],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(r.stdout) if d}
    assert set(docs) == {("PrometheusRule", "edgecert"), ("PodMonitor", "edgecert"),
                         ("ConfigMap", "edgecert-grafana-dashboard")}
    cm = docs[("ConfigMap", "edgecert-grafana-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["grafana-dashboard.json"]) == M.dashboard()
    assert docs[("PrometheusRule", "edgecert")]["spec"] == yaml.safe_load(M.RULES.read_text())
    for d in docs.values():
        assert d["metadata"]["namespace"] == "edgecert-system"
    pm = docs[("PodMonitor", "edgecert")]["spec"]
    assert pm["podMetricsEndpoints"][0]["port"] == "admin"  # the admin port of both roles
    assert pm["podMetricsEndpoints"][0]["honorLabels"] is True
