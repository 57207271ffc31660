"""Generate charts/mailops/dashboards/mailops.json with grafana-foundation-sdk.

The dashboard is code: edit this file, run `python tools/dashboard.py`, commit both.
tests/chart/test_monitoring.py regenerates it and fails on any difference, and checks
that every query names a metric the operator serves.

    pip install 'grafana-foundation-sdk==1769699998!10.1.0'
    python tools/dashboard.py            # write the JSON
    python tools/dashboard.py --check    # exit 1 when the committed JSON differs
"""

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parents[1] / "charts" / "mailops" / "dashboards" / "mailops.json"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB = 'job=~"$job"'


def query(expr, legend, ref="A"):
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)


def series(title, description, unit, *queries):
    panel = timeseries.Panel().title(title).description(description).unit(unit).datasource(DS)
    for q in queries:
        panel = panel.with_target(q)
    return panel.height(8).span(12)


def ready_row():
    ready = stat.Panel().title("Ready objects by kind").datasource(DS).height(6).span(12)
    ready = ready.description("mailops_objects with ready=True, per kind (one replica's view).")
    ready = ready.with_target(query(f'max by (kind) (mailops_objects{{{JOB},ready="True"}})', "{{kind}}"))
    not_ready = series(
        "Objects not Ready by kind and state",
        "mailops_objects with ready=False or Unknown. The reason per object: `mailops status -A`.",
        "short",
        query(f'max by (kind, ready) (mailops_objects{{{JOB},ready!="True"}})', "{{kind}} {{ready}}"),
    ).height(6)
    reasons = series(
        "Reconcile results by reason",
        "Finished reconciles per second by kind and result (a condition reason or an error category).",
        "ops",
        query(f"sum by (kind, result) (rate(mailops_reconciles_total{{{JOB}}}[$__rate_interval]))",
              "{{kind}} {{result}}"),
    )
    leader = stat.Panel().title("Leading replicas").datasource(DS).height(6).span(12)
    leader = leader.description("Replicas holding the leader Lease: 1 is healthy, 0 means nothing acts.")
    leader = leader.with_target(query(f"sum(mailops_leader{{{JOB}}})", "leading"))
    return [ready, not_ready, leader, reasons]


def reconcile_row():
    latency = series(
        "Reconcile latency (p50, p99)",
        "From mailops_reconcile_duration_seconds, by kind.",
        "s",
        query(f"histogram_quantile(0.5, sum by (kind, le) (rate(mailops_reconcile_duration_seconds_bucket{{{JOB}}}[$__rate_interval])))",
              "p50 {{kind}}"),
        query(f"histogram_quantile(0.99, sum by (kind, le) (rate(mailops_reconcile_duration_seconds_bucket{{{JOB}}}[$__rate_interval])))",
              "p99 {{kind}}", "B"),
    )
    kube = series(
        "Kubernetes API requests by verb",
        "mailops_kube_requests_total per second.",
        "reqps",
        query(f"sum by (verb) (rate(mailops_kube_requests_total{{{JOB}}}[$__rate_interval]))", "{{verb}}"),
    )
    return [latency, kube]


def exchange_row():
    tokens = series(
        "Token requests by result",
        "OAuth 2.0 token requests to Entra ID per second (mailops_token_requests_total).",
        "reqps",
        query(f"sum by (result) (rate(mailops_token_requests_total{{{JOB}}}[$__rate_interval]))", "{{result}}"),
    )
    probes = series(
        "Exchange probes by service and result",
        "EWS and Graph probes per second (mailops_exchange_probes_total); Throttled and Unreachable are the ones to watch.",
        "reqps",
        query(f"sum by (service, result) (rate(mailops_exchange_probes_total{{{JOB}}}[$__rate_interval]))",
              "{{service}} {{result}}"),
    )
    return [tokens, probes]


def build():
    datasource = dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
    job = (
        dashboard.QueryVariable("job")
        .label("Job")
        .datasource(DS)
        .query("label_values(mailops_leader, job)")
        .include_all(True)
        .multi(True)
    )
    board = (
        dashboard.Dashboard("mailops")
        .uid("mailops-overview")
        .tags(["mailops", "exchange"])
        .description("mailops operator: Ready objects, reconciles, Entra ID tokens, Exchange probes, API requests.")
        .refresh("1m")
        .time("now-6h", "now")
        .with_variable(datasource)
        .with_variable(job)
    )
    for title, panels in (
        ("Objects", ready_row()),
        ("Reconciles", reconcile_row()),
        ("Entra ID and Exchange", exchange_row()),
    ):
        board = board.with_row(dashboard.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board.build()


def render():
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is not what tools/dashboard.py generates; run it and commit", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
