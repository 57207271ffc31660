"""Render the chart and print the objects of some of its templates as one JSON list, for
tests written in Rust (tests/e2e_webhook.rs applies the aggregated ClusterRoles to a real
API server):

    python tests/chart/render.py --release mailops-e2e aggregated-rbac.yaml
"""

import argparse
import json
import sys
from pathlib import Path

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "mailops"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--release", default="mailops")
    parser.add_argument("--namespace", default="mailops-system")
    parser.add_argument("templates", nargs="+", help="file names under templates/")
    args = parser.parse_args()
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render({}, name=args.release, namespace=args.namespace)
    wanted = {f"mailops/templates/{t}" for t in args.templates}
    unknown = wanted - manifests.keys()
    if unknown:
        sys.exit(f"no such template: {sorted(unknown)}")
    objects = [
        doc for path in sorted(wanted) for doc in yaml.safe_load_all(manifests[path]) if doc
    ]
    json.dump(objects, sys.stdout)


if __name__ == "__main__":
    main()
