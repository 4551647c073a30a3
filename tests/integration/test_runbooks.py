#!/usr/bin/env python3
"""Every alert in deploy/mftrace.rules.yml has a runbook that exists and says what it must.

    python3 tests/integration/test_runbooks.py      (no root, no kernel: a few seconds)

Checks, per alert: a runbook_url annotation whose default is
file:///usr/share/doc/mftrace/runbooks/<alertname>.md and whose base Prometheus' external label
mftrace_runbooks can replace; docs/runbooks/<alertname>.md exists, is named in
docs/runbooks/README.md, and has its three parts (what it means, how to confirm it, what
to change); each metric a runbook names is one the exporter serves (its --help and the
registry's families in user/present/metrics.c), or Prometheus' own. And no runbook is left
without an alert. Prints "PASS name" / "FAIL name: why".
"""

from __future__ import annotations

import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RULES = os.path.join(REPO, "deploy", "mftrace.rules.yml")
RUNBOOKS = os.path.join(REPO, "docs", "runbooks")
URL = ("{{ with $externalLabels.mftrace_runbooks }}{{ . }}{{ else }}"
       "file:///usr/share/doc/mftrace/runbooks{{ end }}/%s.md")
failed = 0


def report(ok: bool, name: str, why: str = "") -> None:
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}", flush=True)
    failed += not ok


def served_metrics() -> set[str]:
    """Metric names the registry declares (families[] in user/present/metrics.c), with the
    suffixes Prometheus sees."""
    with open(os.path.join(REPO, "user", "present", "metrics.c")) as f:
        src = f.read()
    names = set()
    for name, typ in re.findall(r"\{\s*\"((?:mftrace|process)_\w+)\",\s*(T_\w+)", src):
        names.add(name + {"T_COUNTER": "_total", "T_INFO": "_info"}.get(typ, ""))
        if typ == "T_HISTOGRAM":
            names |= {name + s for s in ("_bucket", "_sum", "_count")}
    return names


def main() -> int:
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    report(len(alerts) >= 9, f"rules: {len(alerts)} alerts", f"only {sorted(alerts)}")
    with open(os.path.join(RUNBOOKS, "README.md")) as f:
        index = f.read()
    served = served_metrics()
    for name, r in sorted(alerts.items()):
        errs = []
        url = r.get("annotations", {}).get("runbook_url")
        if url != URL % name:
            errs.append(f"runbook_url {url!r}")
        path = os.path.join(RUNBOOKS, name + ".md")
        if not os.path.isfile(path):
            errs.append(f"no file {os.path.relpath(path, REPO)}")
        else:
            with open(path) as f:
                text = f.read()
            if not text.startswith(f"# {name}\n"):
                errs.append("the title is not the alert's name")
            for part in ("## What it means", "## Confirm it", "## What to change"):
                if part not in text:
                    errs.append(f"no '{part}'")
            if "mftrace " not in text:
                errs.append("no mftrace command to confirm it")
            unknown = {m for m in re.findall(r"\b((?:mftrace|process)_[a-z_]*[a-z])\b", text)
                       if m not in served and not m.startswith("mftrace_runbooks")}
            if unknown:
                errs.append(f"names metrics the exporter does not serve: {sorted(unknown)}")
        if f"[{name}.md]({name}.md)" not in index:
            errs.append("not listed in docs/runbooks/README.md")
        report(not errs, f"runbook: {name}", "; ".join(errs))
    orphans = sorted(f[:-3] for f in os.listdir(RUNBOOKS) if f.endswith(".md") and f != "README.md"
                     and f[:-3] not in alerts)
    report(not orphans, "runbooks: none without an alert", f"orphans {orphans}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
