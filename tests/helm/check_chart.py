"""Static checks of helm/strata (acceptance points 1 and 2 of the chart issue).

  lint      helm lint --strict, for the default, minimal and production values
  validate  helm template | kubernetes-validate --strict for Kubernetes 1.29 and 1.34
  dashboards  the dashboards ConfigMap carries every helm/strata/dashboards/*.json
  golden    the rendered output equals tests/helm/golden/*.yaml (--update-golden rewrites them)
  negative  values that must not render fail with their message (quorum above bookies, ...)
  checkov   policy checks of the rendered manifests; each skipped check is explained below
  hadolint  the Dockerfile (hadolint and checkov's dockerfile checks)
  config    every rendered container running `strata` passes `--check-config` with the
            ConfigMaps and Secrets it mounts (needs --strata)

Run through scripts/helm-test (which installs the tools).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import podsim

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "strata"
GOLDEN = REPO / "tests" / "helm" / "golden"
VALUES = {
    "default": [],
    "minimal": [str(CHART / "values-minimal.yaml")],
    "production": [str(CHART / "values-production.yaml")],
}
KUBE_VERSIONS = ["1.29", "1.34"]
RELEASE, NAMESPACE = "strata", "strata"

# Checkov checks that fail on purpose, and why. Anything else failing fails the run.
CHECKOV_SKIPS = {
    "CKV_K8S_11": "CPU limits: CPU limits throttle brokers and bookies (CFS quota) and add tail "
                  "latency; the chart sets CPU requests and memory limits, and resources.limits.cpu "
                  "can be set per component",
    "CKV_K8S_15": "imagePullPolicy Always: IfNotPresent with a pinned tag or digest avoids a "
                  "registry round-trip per pod start; image.pullPolicy sets Always",
    "CKV_K8S_43": "image digest: the chart cannot know the digest of an image built later; "
                  "image.digest and etcd.image.digest pin one",
    "CKV2_K8S_6": "NetworkPolicy: which clients may reach the brokers depends on the cluster and "
                  "its CNI; left to the operator",
}


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


class Checker:
    def __init__(self, tools: Path, strata: str | None):
        self.helm = str(tools / "helm")
        self.bin = tools / "venv" / "bin"
        self.strata = strata
        self.failures: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="strata-helm-check-"))

    def fail(self, what: str) -> None:
        print(f"FAIL {what}")
        self.failures.append(what)

    def ok(self, what: str) -> None:
        print(f"ok   {what}")

    def render(self, name: str, sets=None) -> str:
        return podsim.helm_template(self.helm, str(CHART), VALUES[name], sets, RELEASE, NAMESPACE)

    def lint(self) -> None:
        for name, files in VALUES.items():
            args = [self.helm, "lint", "--strict", str(CHART)] + sum((["-f", f] for f in files), [])
            r = run(args)
            (self.ok if r.returncode == 0 else self.fail)(f"helm lint --strict ({name})" + ("" if r.returncode == 0 else "\n" + r.stdout + r.stderr))

    def validate(self) -> None:
        paths = []
        for name in VALUES:
            path = self.tmp / f"{name}.yaml"
            path.write_text(self.render(name))
            paths.append(str(path))
        for k in KUBE_VERSIONS:
            r = run([str(self.bin / "kubernetes-validate"), "--strict", "-k", k, "--quiet"] + paths)
            # CRDs (cert-manager Certificate, prometheus-operator monitors) have no built-in schema
            errors = [l for l in (r.stdout + r.stderr).splitlines()
                      if l.strip() and "Couldn't find schema for kind" not in l]
            if r.returncode == 0 and not errors:
                self.ok(f"kubernetes-validate --strict -k {k} ({', '.join(VALUES)})")
            else:
                self.fail(f"kubernetes-validate -k {k}:\n" + "\n".join(errors))

    def golden(self, update: bool) -> None:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name in VALUES:
            text = self.render(name)
            g = GOLDEN / f"{name}.yaml"
            if update:
                g.write_text(text)
                self.ok(f"golden {g.relative_to(REPO)} written")
            elif not g.exists() or g.read_text() != text:
                diff = run(["diff", "-u", str(g), "-"], input=text).stdout[:4000]
                self.fail(f"golden {g.relative_to(REPO)} differs (scripts/helm-test --update-golden "
                          f"refreshes it; review the diff):\n{diff}")
            else:
                self.ok(f"golden {g.relative_to(REPO)}")

    def dashboards(self) -> None:
        """With monitoring.dashboards.enabled, one ConfigMap carries every dashboard of
        helm/strata/dashboards, each valid JSON with panels that query metrics."""
        text = self.render("default", ["monitoring.dashboards.enabled=true"])
        maps = [d for d in podsim.load_docs(text)
                if d and d.get("kind") == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")]
        files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
        if len(maps) != 1 or sorted(maps[0].get("data", {})) != files:
            self.fail(f"dashboards ConfigMap: {[sorted(m.get('data', {})) for m in maps]} != {files}")
            return
        if maps[0]["metadata"]["labels"].get("grafana_dashboard") != "1":
            self.fail("dashboards ConfigMap lacks the grafana_dashboard label")
            return
        for name, body in maps[0]["data"].items():
            d = json.loads(body)
            exprs = [t["expr"] for p in d.get("panels", []) for t in p.get("targets", [])]
            if not d.get("uid") or not exprs:
                self.fail(f"dashboard {name}: no uid or no queries")
                return
        self.ok(f"dashboards ConfigMap carries {', '.join(files)}")

    def negative(self) -> None:
        cases = [
            ("quorum above bookies", ["bookie.replicas=1", "quorum.ensembleSize=3"],
             "quorum.ensembleSize (3) exceeds bookie.replicas (1)"),
            ("ack quorum above write quorum", ["quorum.writeQuorum=1", "quorum.ackQuorum=2"],
             "quorum.ackQuorum (2) exceeds quorum.writeQuorum (1)"),
            ("auth without a key Secret", ["auth.enabled=true"],
             "auth.enabled=true needs auth.secretKey.secretName"),
            ("auth without a client token Secret",
             ["auth.enabled=true", "auth.secretKey.secretName=k"], "auth.clientToken.secretName"),
            ("TLS without a Secret", ["tls.enabled=true"], "tls.enabled=true needs tls.secretName"),
            ("TLS with Deployment brokers (they advertise pod IPs)", ["tls.enabled=true", "tls.secretName=t"],
             "tls.enabled=true needs broker.kind=StatefulSet"),
            ("external etcd without endpoints", ["etcd.enabled=false"], "etcd.external.endpoints"),
            ("schema: unknown value", ["bookie.antiAffinity=sometimes"], "antiAffinity"),
            ("schema: unknown key", ["broker.replica=3"], "replica"),
        ]
        for what, sets, expect in cases:
            cmd = [self.helm, "template", RELEASE, str(CHART)] + sum((["--set", s] for s in sets), [])
            r = run(cmd)
            if r.returncode != 0 and expect in r.stderr:
                line = next(l for l in r.stderr.splitlines() if expect in l)
                self.ok(f"negative: {what} fails: {line.strip()[:200]}")
            else:
                self.fail(f"negative: {what}: rc={r.returncode}, expected {expect!r} in:\n{r.stderr}")
        # an external etcd: no etcd objects, every role pointed at the given endpoints
        text = podsim.helm_template(self.helm, str(CHART), [],
                                    ["etcd.enabled=false", "etcd.external.endpoints={e1.example:2379,e2.example:2379}"])
        docs = podsim.load_docs(text)
        etcd_objs = [d["metadata"]["name"] for d in docs if "etcd" in d["metadata"]["name"]]
        if not etcd_objs and text.count("etcd://e1.example:2379,e2.example:2379") >= 3:
            self.ok("external etcd: no etcd objects rendered, roles use etcd://e1.example:2379,e2.example:2379")
        else:
            self.fail(f"external etcd: objects {etcd_objs} or endpoints missing")
        # a one-bookie install derives E=Qw=Qa=1
        text = podsim.helm_template(self.helm, str(CHART), [], ["bookie.replicas=1"])
        if "ensemble_size = 1" in text and "write_quorum = 1" in text and "ack_quorum = 1" in text:
            self.ok("quorum derived for one bookie (E=Qw=Qa=1)")
        else:
            self.fail("quorum not derived for bookie.replicas=1")

    def checkov(self) -> None:
        d = self.tmp / "checkov"
        d.mkdir(exist_ok=True)
        for name in VALUES:
            (d / f"{name}.yaml").write_text(self.render(name))
        env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false")
        r = run([str(self.bin / "checkov"), "--framework", "kubernetes", "-d", str(d), "--skip-download",
                 "--skip-check", ",".join(CHECKOV_SKIPS), "-o", "json", "--quiet", "--compact"], env=env)
        try:
            report = json.loads(r.stdout)
        except json.JSONDecodeError:
            self.fail(f"checkov: no JSON report:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
            return
        reports = report if isinstance(report, list) else [report]
        failed = [f for rep in reports for f in rep.get("results", {}).get("failed_checks", [])]
        passed = sum(rep.get("summary", {}).get("passed", 0) for rep in reports)
        skipped = sum(rep.get("summary", {}).get("skipped", 0) for rep in reports)
        if failed:
            lines = [f"{f['check_id']} {f['check_name']} ({f['file_path']}: {f['resource']})" for f in failed]
            self.fail(f"checkov: {len(failed)} failed:\n  " + "\n  ".join(lines))
        else:
            self.ok(f"checkov ({', '.join(VALUES)}): {passed} passed, 0 failed, {skipped} skipped "
                    f"(checks {', '.join(CHECKOV_SKIPS)} and per-resource annotations, each explained)")

    def hadolint(self) -> None:
        r = run([str(self.bin / "hadolint"), str(REPO / "Dockerfile")])
        (self.ok if r.returncode == 0 else self.fail)("hadolint Dockerfile" + ("" if r.returncode == 0 else ":\n" + r.stdout + r.stderr))
        env = dict(os.environ, BC_SKIP_MAPPING="TRUE")
        r = run([str(self.bin / "checkov"), "--framework", "dockerfile", "-f", str(REPO / "Dockerfile"),
                 "--skip-download", "-o", "json", "--quiet", "--compact"], env=env)
        try:
            rep = json.loads(r.stdout)
        except json.JSONDecodeError:
            self.fail(f"checkov Dockerfile: no JSON report:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
            return
        failed = rep.get("results", {}).get("failed_checks", []) if isinstance(rep, dict) else []
        if failed:
            self.fail("checkov Dockerfile: " + ", ".join(f["check_id"] for f in failed))
        else:
            self.ok(f"checkov Dockerfile: {rep.get('summary', {}).get('passed', 0)} passed, 0 failed")

    def fake_secrets(self, docs) -> dict[str, dict[str, bytes]]:
        return podsim.make_secrets(self.strata, self.tmp / "secrets", docs)

    def config(self) -> None:
        if not self.strata:
            self.fail("config: no --strata binary given")
            return
        for name in VALUES:
            self._config_of(name, self.render(name), expect_ok=True)
        # drift is caught: a key the binary does not know
        self._config_of("default + broker.config.bogus_key", self.render("default", ["broker.config.bogus_key=1"]),
                        expect_ok=False, expect="bogus_key")

    def _config_of(self, name: str, text: str, expect_ok: bool, expect: str = "") -> None:
        docs = podsim.load_docs(text)
        node = podsim.Node(self.tmp / f"node-{abs(hash(name))}", podsim.index(docs, "ConfigMap"),
                           self.fake_secrets(docs), {"/usr/local/bin/strata": self.strata})
        n = 0
        for pod in podsim.expand_pods(docs, NAMESPACE):
            if pod.ordinal > 0:
                continue  # replicas share their spec
            for c in podsim.strata_containers(pod):
                mounts = node.mounts(pod, c)
                podsim.remap_files(mounts)
                env = node.env(pod, c, "127.0.0.1")
                argv = node.argv(c, env, mounts) + ["--check-config"]
                r = run(argv, env=node.process_env(pod, env, mounts), timeout=60)
                what = f"--check-config {pod.owner}/{c['name']} ({name})"
                n += 1
                if expect_ok and r.returncode == 0:
                    continue
                if not expect_ok and r.returncode == 1 and expect in r.stderr:
                    if c["name"] == "broker":
                        self.ok(f"{what} fails as it should: {r.stderr.strip().splitlines()[-1][:140]}")
                    continue
                if not expect_ok and c["name"] != "broker":
                    continue
                self.fail(f"{what}: rc={r.returncode}\n{r.stdout[-1500:]}{r.stderr[-1500:]}")
        if expect_ok:
            self.ok(f"--check-config ({name}): {n} strata containers checked")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", required=True, type=Path)
    ap.add_argument("--strata", help="the strata binary (for the config check)")
    ap.add_argument("--update-golden", action="store_true")
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    c = Checker(a.tools, a.strata)
    steps = {"lint": c.lint, "validate": c.validate, "golden": lambda: c.golden(a.update_golden),
             "negative": c.negative, "dashboards": c.dashboards, "checkov": c.checkov, "hadolint": c.hadolint, "config": c.config}
    for name, step in steps.items():
        if a.only is None or name in a.only:
            t = time.monotonic()
            step()
            print(f"---- {name}: {time.monotonic() - t:.1f}s")
    if c.failures:
        print(f"{len(c.failures)} chart check(s) failed")
        return 1
    print("all chart checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
