"""Every metric each Grafana dashboard panel queries exists in a live scrape of a standalone under
load (issue 16, acceptance 3).

Usage: dashboards.py pulsar://host:port http://host:port DASHBOARD_DIR
"""
import glob
import json
import os
import re
import sys
import time
import urllib.request

import pulsar

from common import check, client, topic, urls

# PromQL words that are not metric names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "le", "inf", "nan"}


def metric_names(expr):
    """Metric names of a PromQL expression: identifiers that are not functions (followed by
    `(`), keywords, label names in `{...}`, grouping labels in `by (...)`, or durations."""
    e = re.sub(r'"[^"]*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def scraped_names(http):
    with urllib.request.urlopen(http + "/metrics", timeout=20) as r:
        text = r.read().decode()
    return {re.match(r"[^{\s]+", l).group(0) for l in text.splitlines() if l and not l.startswith("#")}


def main():
    url, http = urls()
    folder = sys.argv[3]
    c = client(url)
    t = topic("dash")
    p = c.create_producer(t, batching_enabled=False)
    s = c.subscribe(t, "dash-sub", consumer_type=pulsar.ConsumerType.Shared)
    c.subscribe(t, "dash-idle").close()
    for i in range(200):
        p.send(f"m{i}".encode())
    for _ in range(100):
        s.acknowledge(s.receive(timeout_millis=10_000))
    time.sleep(1.5)
    have = scraped_names(http)
    files = sorted(glob.glob(os.path.join(folder, "*.json")))
    check(len(files) >= 4, f"dashboards in {folder}: {files}")
    checked = 0
    for f in files:
        d = json.load(open(f))
        for panel in d["panels"]:
            for target in panel["targets"]:
                for name in metric_names(target["expr"]):
                    check(name in have, f"{os.path.basename(f)} panel '{panel['title']}' queries "
                                        f"{name}, absent from /metrics")
                    checked += 1
        for v in d.get("templating", {}).get("list", []):
            m = re.match(r"label_values\((.*),\s*\w+\)$", v.get("query", "")) if v.get("type") == "query" else None
            for name in metric_names(m.group(1)) if m else []:
                check(name in have, f"{f} variable {v['name']} queries {name}, absent from /metrics")
                checked += 1
    check(checked > 50, f"only {checked} metric references checked")
    c.close()
    print(f"OK {checked} metric references in {len(files)} dashboards")


if __name__ == "__main__":
    main()
