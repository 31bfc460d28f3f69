"""Metric and label names used by deploy/monitoring (alert rules and the Grafana dashboard), and
the names a /metrics page exposes, so a test can check the first against the second.

The PromQL is scanned, not parsed: metric names are identifiers starting with `edgecert_` or
`process_` (every family edgecert exports has one of those prefixes, docs/metrics.md), label
matchers are read from the braces that follow them, grouping labels from by/without/on/ignoring/
group_left/group_right, and labels made by label_replace from its destination argument.
`promtool check rules` has already proven each expression parses (test_monitoring.py), so the
scan only runs over valid PromQL.
"""
import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MON = REPO / "deploy" / "monitoring"
RULES = MON / "edgecert.rules.yaml"
DASHBOARD = MON / "grafana-dashboard.json"
# Added by Prometheus to every scraped series (the scrape job and target), not by edgecert.
TARGET_LABELS = {"job", "instance"}

_METRIC = re.compile(r"\b((?:edgecert|process)_[a-zA-Z0-9_]+)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_LABEL_REPLACE_DST = re.compile(r'"([a-zA-Z_][a-zA-Z0-9_]*)"\s*,\s*"[^"]*"\s*,\s*"[a-zA-Z_][a-zA-Z0-9_]*"'
                                r'\s*,\s*"[^"]*"\s*\)')
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)")


def rule_exprs():
    doc = yaml.safe_load(RULES.read_text())
    return [(r.get("alert") or r.get("record"), r["expr"])
            for g in doc["groups"] for r in g["rules"]]


def dashboard():
    return json.loads(DASHBOARD.read_text())


def all_panels(dash):
    for p in dash["panels"]:
        yield p
        for sub in p.get("panels", []):  # panels of a collapsed row
            yield sub


def dashboard_exprs(dash=None):
    dash = dash or dashboard()
    return [("panel %d %r" % (p["id"], p["title"]), t["expr"])
            for p in all_panels(dash) for t in p.get("targets", [])]


def grafana_to_promql(expr):
    """Replace Grafana's template variables with values so promtool can parse the expression."""
    return (expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
            .replace("$__range", "1h").replace("$namespace", ".*").replace("$instance", ".*"))


def used(expr):
    """(metrics {name: labels matched on it}, grouping labels, labels label_replace creates)."""
    metrics = {}
    for m in _METRIC.finditer(expr):
        labels = set(_MATCHER.findall(m.group(2) or ""))
        metrics.setdefault(m.group(1), set()).update(labels)
    grouping = set()
    for g in _GROUPING.findall(expr):
        grouping |= {x.strip() for x in g.split(",") if x.strip()}
    made = set(_LABEL_REPLACE_DST.findall(expr))
    return metrics, grouping, made


def exposed(text):
    """{family: set(label names)} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
        if not m:
            continue
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        out.setdefault(m.group(1), set()).update(labels)
    return out


def problems(expositions):
    """Every use in the rules and the dashboard of a metric or label that none of the given
    expositions has. Empty when everything matches."""
    have = {}
    for text in expositions:
        for name, labels in exposed(text).items():
            have.setdefault(name, set()).update(labels)
    out = []
    uses = [("rule " + n, e) for n, e in rule_exprs()] + dashboard_exprs()
    for where, expr in uses:
        metrics, grouping, made = used(expr)
        known = set(TARGET_LABELS) | made
        for name, labels in metrics.items():
            if name not in have:
                out.append("%s: metric %s is not exposed" % (where, name))
                continue
            known |= have[name]
            for label in labels - have[name] - TARGET_LABELS:
                out.append("%s: %s has no label %r" % (where, name, label))
        for label in grouping - known:
            out.append("%s: grouping label %r is on none of its metrics" % (where, label))
    for var in dashboard()["templating"]["list"]:
        q = var.get("definition") or ""
        for name, label in _LABEL_VALUES.findall(q):
            if name not in have:
                out.append("variable %s: metric %s is not exposed" % (var["name"], name))
            elif label not in have[name] | TARGET_LABELS:
                out.append("variable %s: %s has no label %r" % (var["name"], name, label))
    return out


def series(text, family):
    """[(labels dict, value)] of one family in a text exposition."""
    out = []
    for line in text.splitlines():
        m = re.match(re.escape(family) + r"(?:\{(.*)\})?\s+(\S+)$", line)
        if m:
            out.append((dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(1) or "")),
                        float(m.group(2))))
    return out
