#!/usr/bin/env python3
"""Writes grafana-dashboard.json here and the chart's copy
(helm/hookline/files/): python3 deploy/observability/make-dashboard.py

Every panel names the metric it plots and says what it means; the metrics
are documented in docs/OPERATIONS.md."""
import json
import pathlib
DS = {"type": "prometheus", "uid": "${datasource}"}
panels = []
y = 0
pid = 1
def row(title):
    global y, pid
    panels.append({"type": "row", "title": title, "id": pid, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    pid += 1; y += 1
def ts(title, targets, unit="short", x=0, w=8, h=8, desc=""):
    global pid
    panels.append({
        "type": "timeseries", "title": title, "id": pid, "datasource": DS, "description": desc,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10}}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i)} for i, (e, l) in enumerate(targets)],
    })
    pid += 1
def line(*items):
    global y
    x = 0
    for (title, targets, unit, desc) in items:
        ts(title, targets, unit, x=x, w=24 // len(items), desc=desc)
        x += 24 // len(items)
    y += 8
NS = '{namespace=~"$namespace"}'
def sel(extra=""):
    inner = 'namespace=~"$namespace"' + ("," + extra if extra else "")
    return "{" + inner + "}"
def q(p, metric, by):
    return f'histogram_quantile({p}, sum by (le{by}) (rate({metric}_bucket{sel()}[$__rate_interval])))'

SUCC = sel('outcome="succeeded"')
NOTOK = sel('code!="OK"')
row("Flow")
line(
    ("Published events /s", [(f'sum by (result) (rate(hookline_publish_total{sel()}[$__rate_interval]))', "{{result}}")], "ops",
     "Events accepted by Publish/PublishBatch; duplicates are idempotent replays that published nothing."),
    ("Fan-out /s", [(f'sum(rate(hookline_fanout_events_total{sel()}[$__rate_interval]))', "events"),
                    (f'sum(rate(hookline_fanout_tasks_total{sel()}[$__rate_interval]))', "deliveries enqueued")], "ops",
     "Events matched against subscriptions and the delivery tasks they produced."),
    ("Delivery attempts /s by outcome", [(f'sum by (outcome) (rate(hookline_delivery_attempts_total{sel()}[$__rate_interval]))', "{{outcome}}")], "ops",
     "succeeded, retry (scheduled again), dead_lettered (out of attempts), gone (410: subscription disabled)."),
)
line(
    ("Success ratio", [(f'sum(rate(hookline_delivery_attempts_total{SUCC}[$__rate_interval])) / sum(rate(hookline_delivery_attempts_total{sel()}[$__rate_interval]))', "succeeded / all attempts")], "percentunit",
     "Share of attempts answered 2xx. Receivers' failures show here first."),
    ("Publish → delivered latency", [(q(0.5, "hookline_publish_to_delivery_seconds", ""), "p50"), (q(0.95, "hookline_publish_to_delivery_seconds", ""), "p95"), (q(0.99, "hookline_publish_to_delivery_seconds", ""), "p99")], "s",
     "From Publish being acknowledged to the receiver's 2xx, for successful attempts (retries included)."),
    ("Attempt duration", [(q(0.5, "hookline_delivery_attempt_duration_seconds", ""), "p50"), (q(0.95, "hookline_delivery_attempt_duration_seconds", ""), "p95"), (q(0.99, "hookline_delivery_attempt_duration_seconds", ""), "p99")], "s",
     "The HTTP request to the receiver, connect to response body."),
)
row("Queues")
line(
    ("Stream lag (not yet read)", [(f'sum by (stream) (hookline_stream_lag{sel()})', "{{stream}}")], "short",
     "Entries the consumer group has not read yet. Growing lag: add replicas (or partitions)."),
    ("Stream pending (read, not acknowledged)", [(f'sum by (stream) (hookline_stream_pending{sel()})', "{{stream}}")], "short",
     "In work. For deliveries, bounded by max_concurrency per replica; stuck entries are claimed after claim_idle."),
    ("Retries scheduled", [(f'max(hookline_retries_scheduled{sel()})', "waiting")], "short",
     "Deliveries waiting for their next attempt (retry schedule, Retry-After, open circuits, rate limits)."),
)
line(
    ("Stream length", [(f'sum by (stream, partition) (hookline_stream_length{sel()})', "{{stream}} p{{partition}}")], "short",
     "Entries kept in each stream (acknowledged entries are trimmed after the retention)."),
    ("Delivery backlog seen by fan-out", [(f'max by (partition) (hookline_delivery_backlog{sel()})', "p{{partition}}")], "short",
     "Fan-out stops enqueueing a partition when this reaches max_delivery_backlog (backpressure)."),
    ("Deferred without an attempt /s", [(f'sum(rate(hookline_deliveries_parked_total{sel()}[$__rate_interval]))', "parked")], "ops",
     "Tasks put back without spending an attempt: paused subscription, open circuit, in-flight or rate limit, fair share."),
)
row("Subscribers and services")
line(
    ("Subscriptions by state", [(f'max by (state) (hookline_subscriptions{sel()})', "{{state}}")], "short",
     "Paused subscriptions hold their deliveries until resumed (auto-pause after repeated failures)."),
    ("Circuit breakers", [(f'sum by (state) (hookline_circuit_breakers{sel()})', "{{state}}")], "short",
     "Endpoints whose circuit is open (deliveries deferred) or half-open (one probe in flight), summed over replicas."),
    ("gRPC errors /s", [(f'sum by (service, method, code) (rate(hookline_grpc_server_requests_total{NOTOK}[$__rate_interval]))', "{{method}} {{code}}")], "ops",
     "Calls answered with an error status. INVALID_ARGUMENT / NOT_FOUND are callers' mistakes; UNAVAILABLE / INTERNAL are ours."),
)
line(
    ("gRPC calls /s", [(f'sum by (service, method) (rate(hookline_grpc_server_requests_total{sel()}[$__rate_interval]))', "{{method}}")], "ops", ""),
    ("gRPC p99 latency", [(q(0.99, "hookline_grpc_server_duration_seconds", ", method"), "{{method}}")], "s", ""),
    ("Partitions owned per replica", [(f'sum by (group, pod) (hookline_partitions_owned{sel()})', "{{group}} {{pod}}")], "short",
     "Exclusive ownership (fanout by default): each replica's share of the partitions; the sum per group should equal the partition count. Shared ownership (delivery by default): every replica shows all of them."),
)
dashboard = {
    "title": "hookline",
    "uid": "hookline-overview",
    "description": "Webhook flow, queues and health of hookline (metrics documented in docs/OPERATIONS.md).",
    "tags": ["hookline", "webhooks"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "refresh": "30s",
    "time": {"from": "now-1h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
        {"name": "namespace", "type": "query", "datasource": DS, "label": "namespace",
         "query": {"query": "label_values(hookline_grpc_server_requests_total, namespace)", "refId": "ns"},
         "includeAll": True, "allValue": ".*", "multi": True, "refresh": 2,
         "current": {"text": "All", "value": "$__all"}},
    ]},
    "panels": panels,
}
HERE = pathlib.Path(__file__).resolve().parent
text = json.dumps(dashboard, indent=2) + "\n"
for path in [HERE / "grafana-dashboard.json", HERE.parent.parent / "helm/hookline/files/grafana-dashboard.json"]:
    path.write_text(text)
    print(f"wrote {path}")
