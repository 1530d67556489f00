"""Boot test of helm/strata without Kubernetes (acceptance point 3 of the chart issue).

Renders the chart (tests/helm/boot-values.yaml: default topology, ports moved off the reserved
ones), expands StatefulSets, Deployments and Jobs into Pods and runs each Pod's containers as local
processes (see podsim.py) under the user, group and fsGroup of their securityContext (never root;
volumes owned as the kubelet leaves them): each Pod on its own loopback address 127.0.x.y, every Service and Pod
DNS name in a private /etc/hosts (this script re-runs itself in a mount namespace and bind-mounts
its own hosts file; Service names list the ready endpoints, like kube-proxy, and are rewritten as
pods come and go). Then:

 1. the Jobs start first (init-cluster waits for etcd by itself), then every other Pod; the Jobs
    must succeed and every readiness probe (its real path and port) pass;
 2. the chart's `helm test` Pod runs (strata produce + consume through the broker Service);
 3. the official Python client produces and consumes through the broker Service's DNS name;
 4. a bookie Pod is SIGKILLed and recreated with its volumes (same name, new IP): it registers
    under the same DNS identity and every earlier message is still readable;
 5. an etcd member (of 3) is SIGKILLed and recreated with its volume on a new IP: it rejoins;
 6. the chart is re-rendered with a changed broker value and the brokers are rolled one by one
    (maxSurge 1: the new pod is ready before the old one gets SIGTERM) while a producer keeps
    sending: no acknowledged message is lost.

With --auth, token authentication is on (the key and a superuser token in Secrets, made as the
README says): the admin API must refuse a request without the token, and every client uses it.
With --tls, brokers are a StatefulSet with TLS from a cert-manager Certificate (its Secret made
here as cert-manager would, self-signed, with the Certificate's DNS names): the Python client uses
pulsar+ssl:// through the Service name and checks host names, also after lookup redirects; the
StatefulSet is rolled like its controller does (highest ordinal first, stop, then recreate).

Run through scripts/helm-test (default values; values-minimal.yaml with --auth --tls). Loopback only; ports 6650/6651/8080/8443 are never used.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import podsim

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "strata"
HERE = Path(__file__).resolve().parent
RELEASE, NAMESPACE, DOMAIN = "r", "strata", "cluster.local"
RESERVED_PORTS = {6650, 6651, 8080, 8443}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class PodRun(threading.Thread):
    """One Pod: init containers in order, then its main container, restarted like the kubelet."""

    def __init__(self, cluster: "Cluster", pod: podsim.Pod, ip: str):
        super().__init__(daemon=True, name=pod.name)
        self.cluster, self.pod, self.ip = cluster, pod, ip
        self.proc: subprocess.Popen | None = None
        self.ready = False
        self.started = False  # startup probe passed
        self.phase = "Pending"
        self.restarts = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    # -- processes --------------------------------------------------------------------------
    def _spawn(self, c: dict) -> subprocess.Popen:
        node = self.cluster.node
        mounts = node.mounts(self.pod, c)
        podsim.remap_files(mounts)
        env = node.env(self.pod, c, self.ip)
        argv = node.argv(c, env, mounts)
        logf = open(self.cluster.logs / f"{self.pod.name}.{c['name']}.log", "a")
        logf.write(f"---- {' '.join(argv)}\n")
        logf.flush()
        uid, gid, fs_group = node.identity(self.pod, c)
        if uid == 0:
            raise RuntimeError(f"{self.pod.name}/{c['name']} would run as root")
        # as the securityContext says: its user, its group and the fsGroup, never root
        return subprocess.Popen(argv, env=node.process_env(self.pod, env, mounts), stdout=logf,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=node.pod_dir(self.pod), start_new_session=True,
                                user=uid, group=gid, extra_groups=[fs_group])

    def _run_to_end(self, c: dict) -> int:
        with self.lock:
            if self.stopping.is_set():
                return -1
            self.proc = self._spawn(c)
        return self.proc.wait()

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # a pod that cannot start fails, as in Kubernetes
            if not self.stopping.is_set():
                log(f"pod {self.pod.name} failed: {e}")
            self.phase = "Failed"

    def _run(self) -> None:
        self.cluster.node.pod_dir(self.pod).mkdir(parents=True, exist_ok=True)
        policy = self.pod.spec.get("restartPolicy", "Always")
        backoff = 0.5
        for c in self.pod.spec.get("initContainers", []):
            while True:
                rc = self._run_to_end(c)
                if self.stopping.is_set():
                    return
                if rc == 0:
                    break
                if policy == "Never":
                    self.phase = "Failed"
                    return
                self.restarts += 1
                time.sleep(backoff)
                backoff = min(backoff * 2, 5)
        main = self.pod.spec["containers"][0]
        self.phase = "Running"
        while not self.stopping.is_set():
            with self.lock:
                if self.stopping.is_set():
                    break
                self.proc = self._spawn(main)
            self._probe_until_exit(main)
            rc = self.proc.wait()
            self.ready = self.started = False
            self.cluster.hosts_changed()
            if self.stopping.is_set():
                break
            if rc == 0 and policy != "Always":
                self.phase = "Succeeded"
                return
            if policy == "Never":
                self.phase = "Failed"
                return
            self.restarts += 1
            time.sleep(backoff)
            backoff = min(backoff * 2, 5)
        self.phase = "Terminated"

    # -- probes -----------------------------------------------------------------------------
    def _port(self, c: dict, port) -> int:
        if isinstance(port, int):
            return port
        for p in c.get("ports", []):
            if p.get("name") == port:
                return p["containerPort"]
        raise KeyError(f"{self.pod.name}: no port named {port}")

    def probe(self, c: dict, probe: dict | None) -> bool:
        if probe is None:
            return True
        try:
            if "httpGet" in probe:
                h = probe["httpGet"]
                url = f"http://{self.ip}:{self._port(c, h['port'])}{h.get('path', '/')}"
                with urllib.request.urlopen(url, timeout=1) as r:
                    return 200 <= r.status < 400
            if "tcpSocket" in probe:
                with socket.create_connection((self.ip, self._port(c, probe["tcpSocket"]["port"])), 1):
                    return True
        except OSError:
            return False
        raise ValueError(f"{self.pod.name}: unsupported probe {probe}")

    def _probe_until_exit(self, c: dict) -> None:
        while self.proc.poll() is None:
            if not self.started:
                self.started = self.probe(c, c.get("startupProbe"))
            if self.started:
                ready = self.probe(c, c.get("readinessProbe"))
                if ready != self.ready:
                    self.ready = ready
                    if self.pod.kind not in ("Job", "Pod"):
                        log(f"pod {self.pod.name} ({self.ip}) {'ready' if ready else 'not ready'}")
                    self.cluster.hosts_changed()
            time.sleep(0.3)

    # -- stopping ---------------------------------------------------------------------------
    def signal(self, sig: int) -> None:
        with self.lock:
            if self.proc and self.proc.poll() is None:
                os.killpg(self.proc.pid, sig)

    def terminate(self, grace: float | None = None) -> float:
        """SIGTERM, then SIGKILL after terminationGracePeriodSeconds; returns seconds taken."""
        grace = grace if grace is not None else self.pod.spec.get("terminationGracePeriodSeconds", 30)
        t = time.monotonic()
        self.stopping.set()
        self.ready = False
        self.cluster.hosts_changed()
        self.signal(signal.SIGTERM)
        proc = self.proc
        if proc is not None:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"pod {self.pod.name}: still running after {grace}s, SIGKILL")
                self.signal(signal.SIGKILL)
                proc.wait()
        self.join(timeout=10)
        return time.monotonic() - t

    def kill(self) -> None:
        """SIGKILL: the pod is gone without a chance to clean up."""
        self.stopping.set()
        self.ready = False
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
        self.join(timeout=10)
        self.cluster.hosts_changed()


class Cluster:
    def __init__(self, root: Path, docs: list[dict], strata: str, etcd: str, hosts: Path,
                 secrets: dict[str, dict[str, bytes]]):
        self.root, self.hosts, self.secrets = root, hosts, secrets
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.binaries = {"/usr/local/bin/strata": strata, "/usr/local/bin/etcd": etcd}
        self.pods: dict[str, PodRun] = {}
        self.next_ip = 0
        self.hosts_lock = threading.Lock()
        self.apply_docs(docs)

    def apply_docs(self, docs: list[dict]) -> None:
        self.docs = docs
        self.services = [d for d in docs if d.get("kind") == "Service"]
        self.node = podsim.Node(self.root, podsim.index(docs, "ConfigMap"), self.secrets, self.binaries)
        for p in self.pods.values():
            p.cluster = self

    def alloc_ip(self) -> str:
        self.next_ip += 1
        return f"127.0.{100 + self.next_ip // 200}.{1 + self.next_ip % 200}"

    def start(self, pod: podsim.Pod) -> PodRun:
        self.node.reset_pod(pod)
        run = PodRun(self, pod, self.alloc_ip())
        self.pods[pod.name] = run
        log(f"start pod {pod.name} on {run.ip}")
        run.start()
        self.hosts_changed()
        return run

    def hosts_changed(self) -> None:
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost"]
        live = [p for p in self.pods.values() if not p.stopping.is_set() or p.ready]
        for p in live:
            names = [p.pod.name]
            sub = p.pod.spec.get("subdomain")
            if sub:
                base = f"{p.pod.name}.{sub}.{NAMESPACE}"
                names += [f"{base}.svc.{DOMAIN}", f"{base}.svc", base]
            lines.append(f"{p.ip} {' '.join(names)}")
        for s in self.services:
            sel = s["spec"].get("selector") or {}
            not_ready_ok = s["spec"].get("publishNotReadyAddresses", False)
            eps = [p for p in live if all(p.pod.labels.get(k) == v for k, v in sel.items())
                   and (p.ready or (not_ready_ok and not p.stopping.is_set()))]
            n = s["metadata"]["name"]
            names = f"{n}.{NAMESPACE}.svc.{DOMAIN} {n}.{NAMESPACE}.svc {n}.{NAMESPACE} {n}"
            lines += [f"{p.ip} {names}" for p in sorted(eps, key=lambda p: not p.ready)]
        text = "\n".join(lines) + "\n"
        # In place (the bind mount keeps the inode) and never through an empty or cut file: a
        # pod resolving a name meanwhile must read the old list or the new one. One write of the
        # whole text, padded with a blank line to the old length, so nothing is truncated.
        with self.hosts_lock, open(self.hosts, "r+") as f:
            old = f.read()
            if old.rstrip() != text.rstrip():
                if len(text) < len(old):
                    text += " " * (len(old) - len(text) - 1) + "\n"
                f.seek(0)
                f.write(text)
                f.flush()

    def wait(self, what: str, cond, timeout: float) -> float:
        t = time.monotonic()
        while not cond():
            if time.monotonic() - t > timeout:
                raise TimeoutError(f"{what}: not within {timeout}s")
            time.sleep(0.2)
        took = time.monotonic() - t
        log(f"{what}: {took:.1f}s")
        return took

    def stop_all(self) -> None:
        """Brokers and jobs first, then bookies, etcd last (as `helm uninstall` would leave it)."""
        def rank(p: PodRun) -> int:
            return 2 if "etcd" in p.pod.owner else 1 if p.pod.kind == "StatefulSet" else 0
        for r in range(3):
            group = [p for p in self.pods.values() if rank(p) == r]
            for p in group:
                p.stopping.set()
                p.signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            for p in group:
                if p.proc is not None:
                    try:
                        p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        p.signal(signal.SIGKILL)
                        p.proc.wait()

    def tail_logs(self, n: int = 15) -> None:
        for f in sorted(self.logs.iterdir()):
            lines = f.read_text(errors="replace").splitlines()[-n:]
            print(f"==== {f.name}\n" + "\n".join(lines))


EXTRA_VALUES: list[str] = []  # --values: e.g. the chart's values-minimal.yaml
EXTRA_SETS: list[str] = []  # --auth: token authentication with Secrets made like an operator would
TLS_SETS = ["broker.kind=StatefulSet", "tls.enabled=true", "tls.certManager.enabled=true",
            "tls.certManager.issuerRef.name=boot-ca"]
AUTH_SETS = ["auth.enabled=true", "auth.secretKey.secretName=strata-token-key",
             "auth.clientToken.secretName=strata-admin-token"]


def render(tools: Path, extra_sets: list[str]) -> list[dict]:
    files = EXTRA_VALUES + [str(HERE / "boot-values.yaml")]
    text = podsim.helm_template(str(tools / "helm"), str(CHART), files, EXTRA_SETS + extra_sets,
                                RELEASE, NAMESPACE)
    docs = podsim.load_docs(text)
    for d in docs:
        for port in _ports(d):
            if port in RESERVED_PORTS:
                raise SystemExit(f"boot values render reserved port {port} in {d['kind']} {d['metadata']['name']}")
    return docs


def _ports(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("containerPort", "port") and isinstance(v, int):
                yield v
            else:
                yield from _ports(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _ports(v)


class Client:
    def __init__(self, python: str, root: Path, url: str, token: str | None, ca: str | None = None):
        self.python, self.root, self.url = python, root, url
        self.env = dict(os.environ, BOOT_CLIENT_LOG=str(root / "logs" / "client.log"))
        if token:
            self.env["BOOT_TOKEN"] = token
        if ca:
            self.env["BOOT_TLS_CA"] = ca

    def run(self, *args: str, timeout: float = 150, expect_ok: bool = True) -> str:
        r = subprocess.run([self.python, str(HERE / "client.py"), args[0], self.url, *args[1:]],
                           capture_output=True, text=True, env=self.env, timeout=timeout)
        out = (r.stdout + r.stderr).strip()
        log(f"client {args[0]} {args[1]}: {out.splitlines()[-1][:200] if out else ''}")
        if not expect_ok:
            if r.returncode == 0:
                raise RuntimeError(f"client {' '.join(args)} succeeded but should have been refused")
            return out
        if r.returncode != 0:
            raise RuntimeError(f"client {' '.join(args)} failed:\n{out[-3000:]}")
        return out

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.python, str(HERE / "client.py"), args[0], self.url, *args[1:]],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env)


def bookie_lease(etcd_ip: str, port: int, pod_name: str) -> str | None:
    """The lease of the bookie's registration key in etcd (etcd's JSON gateway), or None."""
    def b64(x: str) -> str:
        return base64.b64encode(x.encode()).decode()
    body = json.dumps({"key": b64("/strata/bookies/"), "range_end": b64("/strata/bookies0")}).encode()
    req = urllib.request.Request(f"http://{etcd_ip}:{port}/v3/kv/range", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            kvs = json.loads(r.read()).get("kvs", [])
    except OSError:
        return None
    for kv in kvs:
        if pod_name in base64.b64decode(kv["key"]).decode(errors="replace"):
            return kv.get("lease")
    return None


def scenario(c: Cluster, tools: Path, python: str) -> None:
    t0 = time.monotonic()
    pods = podsim.expand_pods(c.docs, NAMESPACE)
    jobs = [p for p in pods if p.kind == "Job"]
    tests = [p for p in pods if p.kind == "Pod"]
    workloads = [p for p in pods if p.kind in ("StatefulSet", "Deployment")]
    # 1. Jobs first, then everything else; the Jobs must succeed, every pod get ready
    job_runs = [c.start(p) for p in jobs]
    time.sleep(2)  # the Jobs find no etcd at first: strata init-cluster must wait by itself
    early = [j.pod.name for j in job_runs if j.phase in ("Succeeded", "Failed")]
    if early:
        raise RuntimeError(f"Jobs {early} ended before etcd existed")
    for p in workloads:
        c.start(p)
    c.wait("init Jobs succeeded", lambda: all(j.phase == "Succeeded" for j in job_runs)
           and not any(j.phase == "Failed" for j in job_runs), 180)
    c.wait(f"{len(workloads)} pods ready", lambda: all(c.pods[p.name].ready for p in workloads), 240)
    log(f"cluster up in {time.monotonic() - t0:.1f}s (job restarts: {[j.restarts for j in job_runs]})")
    for j in job_runs:
        if j.restarts:
            raise RuntimeError(f"{j.pod.name}: {j.restarts} restarts; strata init-cluster should have waited")
        log(f"{j.pod.name}: started 2 s before etcd, waited inside strata, succeeded with no restart")

    # 2. the chart's helm test Pod
    for p in tests:
        run = c.start(p)
        c.wait(f"helm test pod {p.name} succeeded", lambda: run.phase in ("Succeeded", "Failed"), 120)
        if run.phase != "Succeeded":
            raise RuntimeError(f"helm test pod {p.name} failed")

    broker_svc = next(s for s in c.services if s["metadata"]["name"].endswith("-broker"))
    port = next(p["port"] for p in broker_svc["spec"]["ports"] if p["name"] == "pulsar")
    http = next(p["port"] for p in broker_svc["spec"]["ports"] if p["name"] == "http")
    host = f"{broker_svc['metadata']['name']}.{NAMESPACE}.svc.{DOMAIN}"
    token = c.secrets["strata-admin-token"]["token"].decode() if "auth.enabled=true" in EXTRA_SETS else None
    certs = [d for d in c.docs if d.get("kind") == "Certificate"]
    if certs:  # TLS: pulsar+ssl:// through the Service name, host names checked (self-signed CA)
        ca = c.root / "ca.crt"
        ca.write_bytes(c.secrets[certs[0]["spec"]["secretName"]]["tls.crt"])
        tls_port = next(p["port"] for p in broker_svc["spec"]["ports"] if p["name"] == "pulsarssl")
        cl = Client(python, c.root, f"pulsar+ssl://{host}:{tls_port}", token, str(ca))
    else:
        cl = Client(python, c.root, f"pulsar://{host}:{port}", token)
    log(f"client service URL {cl.url}")

    if token:  # authentication is on: the admin API refuses a request without the token
        def status(with_token: bool) -> int:
            req = urllib.request.Request(f"http://{host}:{http}/admin/v2/tenants")
            if with_token:
                req.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code
        codes = (status(False), status(True))
        if codes != (401, 200):
            raise RuntimeError(f"admin API without/with the token answered {codes}, expected (401, 200)")
        log(f"admin API without/with the superuser token: {codes[0]}/{codes[1]}")

    # 3. produce and consume through the Service name
    acked1 = str(c.root / "acked1.json")
    cl.run("produce", "boot-1", "200", acked1)
    cl.run("consume", "boot-1", "s1", acked1)

    # 4. a bookie pod killed (SIGKILL) and recreated with its volumes, on a new IP
    bookies = [p for p in workloads if p.owner.endswith("-bookie")]
    victim = bookies[1] if len(bookies) > 1 else bookies[0]
    ident = f"{victim.name}.{victim.spec['subdomain']}.{NAMESPACE}.svc.{DOMAIN}"
    etcd_ip = next(p.ip for p in c.pods.values() if "etcd" in p.pod.owner and p.ready)
    etcd_port = next(s["spec"]["ports"][0]["port"] for s in c.services
                     if s["metadata"]["name"].endswith("-etcd"))
    old_lease = bookie_lease(etcd_ip, etcd_port, victim.name)
    if old_lease is None:
        raise RuntimeError(f"bookie {victim.name} is not registered in etcd")
    old_ip = c.pods[victim.name].ip
    c.pods[victim.name].kill()
    log(f"bookie pod {victim.name} ({old_ip}) SIGKILLed")
    new = c.start(victim)
    c.wait(f"bookie {victim.name} back on {new.ip}", lambda: new.ready, 90)

    def reregistered() -> bool:
        lease = bookie_lease(etcd_ip, etcd_port, victim.name)
        return lease is not None and lease != old_lease
    c.wait(f"bookie registered again (new session) as {ident}", reregistered, 60)

    def listed() -> bool:
        try:
            req = urllib.request.Request(f"http://{host}:{http}/admin/v2/bookies/all")
            if token:
                req.add_header("Authorization", f"Bearer {token}")
            with urllib.request.urlopen(req, timeout=2) as r:
                return ident in r.read().decode()
        except OSError:
            return False
    c.wait("brokers list it under its DNS identity", listed, 30)
    # it came back with its volumes: the journal on its claim was replayed
    blog = (c.logs / f"{victim.name}.bookie.log").read_text().split("---- ")[-1]
    m = re.search(r"bookie storage recovered ledgers=(\d+) indexed=(\d+) replayed=(\d+)", blog)
    if not m or int(m.group(1)) == 0:
        raise RuntimeError(f"restarted bookie {victim.name} did not recover its ledgers: {m and m.group(0)}")
    log(f"restarted bookie recovered its volumes: {m.group(0)}")
    acked1b = str(c.root / "acked1b.json")
    cl.run("produce", "boot-1", "100", acked1b)
    cl.run("consume", "boot-1", "s2", acked1, acked1b)

    # 4b. an etcd member SIGKILLed and recreated with its volume on a new IP: it rejoins under its
    # DNS name (members are never removed on stop), the others keep serving meanwhile
    members = [p for p in workloads if p.owner.endswith("-etcd")]
    if len(members) >= 3:
        gone = members[-1]
        c.pods[gone.name].kill()
        log(f"etcd pod {gone.name} SIGKILLed")
        acked1c = str(c.root / "acked1c.json")
        cl.run("produce", "boot-1", "50", acked1c)  # a quorum is left
        back = c.start(gone)
        c.wait(f"etcd member {gone.name} rejoined on {back.ip}", lambda: back.ready, 90)
        if back.restarts:
            raise RuntimeError(f"{gone.name} restarted {back.restarts} times while rejoining")
        cl.run("consume", "boot-1", "s2b", acked1, acked1b, acked1c)
        acked1b_all = [acked1b, acked1c]
    else:
        acked1b_all = [acked1b]

    # 5. re-render with a changed broker value; roll the brokers one at a time under load
    docs2 = render(tools, ["broker.config.max_pending_sends=500"])
    new_pods = {p.owner: [] for p in podsim.expand_pods(docs2, NAMESPACE)}
    for p in podsim.expand_pods(docs2, NAMESPACE):
        new_pods[p.owner].append(p)
    changed = sorted({p.owner for p in workloads
                      if p.template_hash != new_pods[p.owner][0].template_hash})
    log(f"changed by the re-render: {changed}")
    if changed != [f"{RELEASE}-strata-broker"]:
        raise RuntimeError(f"expected only the broker Deployment to change, got {changed}")
    c.apply_docs(docs2)
    stop = c.root / "stop-producer"
    acked2 = c.root / "acked2.txt"
    producer = cl.start("produce-until", "boot-2", str(stop), str(acked2))
    c.wait("producer running", lambda: acked2.exists() and len(acked2.read_text().split()) >= 20, 60)
    old = [c.pods[p.name] for p in workloads if p.owner in changed]
    pairs = list(zip(old, new_pods[changed[0]]))
    if old[0].pod.kind == "StatefulSet":
        pairs.reverse()  # the StatefulSet controller: highest ordinal first, stop, then recreate
    for i, (old_run, pod) in enumerate(pairs):
        if old_run.pod.kind == "StatefulSet":
            took = old_run.terminate()
            log(f"rollout {i + 1}/{len(old)}: broker {old_run.pod.name} stopped on SIGTERM in {took:.1f}s")
            run = c.start(pod)
            c.wait(f"rollout {i + 1}/{len(old)}: broker {pod.name} recreated and ready", lambda: run.ready, 120)
        else:  # Deployment: maxSurge 1, maxUnavailable 0
            run = c.start(pod)
            c.wait(f"rollout {i + 1}/{len(old)}: new broker {pod.name} ready", lambda: run.ready, 120)
            took = old_run.terminate()
            log(f"rollout {i + 1}/{len(old)}: old broker {old_run.pod.name} stopped on SIGTERM in {took:.1f}s")
        time.sleep(2)
    time.sleep(3)
    stop.touch()
    out, _ = producer.communicate(timeout=60)
    log(f"producer: {out.strip().splitlines()[-1] if out.strip() else ''}")
    if producer.returncode != 0:
        raise RuntimeError(f"producer failed:\n{out[-3000:]}")
    cl.run("consume", "boot-2", "s1", str(acked2))
    cl.run("consume", "boot-1", "s3", acked1, *acked1b_all)
    log(f"boot test passed in {time.monotonic() - t0:.1f}s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", required=True, type=Path)
    ap.add_argument("--strata", required=True)
    ap.add_argument("--python", default=sys.executable, help="a python with pulsar-client")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    ap.add_argument("--values", action="append", default=[], help="more values files")
    ap.add_argument("--auth", action="store_true", help="token authentication on (keys in Secrets)")
    ap.add_argument("--tls", action="store_true",
                    help="TLS from a cert-manager Certificate (its Secret made here), StatefulSet brokers")
    a = ap.parse_args()
    EXTRA_VALUES.extend(os.path.abspath(v) for v in a.values)
    if a.auth:
        EXTRA_SETS.extend(AUTH_SETS)
    if a.tls:
        EXTRA_SETS.extend(TLS_SETS)
    if os.environ.get("STRATA_BOOT_NS") != "1":
        # a private mount namespace, so that /etc/hosts can be ours alone
        env = dict(os.environ, STRATA_BOOT_NS="1")
        os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", sys.executable,
                               *sys.argv], env)
    etcd = shutil.which("etcd")
    if etcd is None:
        raise SystemExit("boot test needs etcd (apt-get install etcd-server)")
    root = Path(tempfile.mkdtemp(prefix="strata-boot-"))
    os.chmod(root, 0o755)  # pods run as their non-root user
    hosts = root / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    os.chmod(hosts, 0o644)
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)
    # The pods' user must be able to run the binary wherever the checkout is (a checkout under a
    # private 0700 directory is not traversable for it): run a copy from the test's own dir.
    bindir = root / "bin"
    bindir.mkdir()
    os.chmod(bindir, 0o755)
    strata = bindir / "strata"
    shutil.copy2(os.path.abspath(a.strata), strata)
    os.chmod(strata, 0o755)
    docs = render(a.tools, [])
    secrets = podsim.make_secrets(str(strata), root / "secrets", docs)
    c = Cluster(root, docs, str(strata), etcd, hosts, secrets)
    ok = False
    try:
        scenario(c, a.tools, a.python)
        ok = True
    except Exception as e:  # report with the pods' logs
        log(f"BOOT TEST FAILED: {e}")
        c.tail_logs()
    finally:
        c.stop_all()
        if a.keep or not ok:
            log(f"files kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
