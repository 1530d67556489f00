"""Turns rendered Kubernetes manifests into local processes (no Kubernetes needed).

Shared by check_chart.py (`--check-config` of every rendered container) and boot.py (the boot
test). What it models, and only that:
- StatefulSets, Deployments and Jobs expanded into Pods (StatefulSet pods get their stable names,
  hostname and subdomain; Deployment pods a template hash in their name);
- a container's command/args with Kubernetes' $(VAR) expansion, its env (value, fieldRef of the
  downward API, secretKeyRef, configMapKeyRef) and envFrom;
- volumes: configMap and secret (files written under a per-pod directory), emptyDir, and the
  StatefulSet's volumeClaimTemplates (a directory per claim and pod that outlives the process);
  every mount path found in args, env or config files is remapped to its directory;
- the image's binary: our image's `/usr/local/bin/strata` is the repo's build, the etcd image's
  `/usr/local/bin/etcd` is the machine's `etcd`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml


def helm_template(helm: str, chart: str, values: list[str], sets: list[str] | None = None,
                  release: str = "r", namespace: str = "strata") -> str:
    cmd = [helm, "template", release, chart, "--namespace", namespace]
    for v in values:
        cmd += ["-f", v]
    for s in sets or []:
        cmd += ["--set", s]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


@dataclass
class Pod:
    name: str
    kind: str  # StatefulSet, Deployment, Job or Pod
    owner: str
    namespace: str
    labels: dict
    spec: dict
    template_hash: str
    ordinal: int = 0
    claims: dict = field(default_factory=dict)  # volume name -> claim name (StatefulSet)


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def expand_pods(docs: list[dict], namespace: str) -> list[Pod]:
    pods = []
    for d in docs:
        kind, meta = d.get("kind"), d.get("metadata", {})
        name = meta.get("name", "")
        if kind in ("StatefulSet", "Deployment"):
            spec = d["spec"]
            tmpl = spec["template"]
            h = _hash(tmpl)
            reps = spec.get("replicas", 2)  # none: HPA-managed (its minReplicas is not looked up)
            for i in range(reps):
                pspec = json.loads(json.dumps(tmpl["spec"]))
                if kind == "StatefulSet":
                    pod_name = f"{name}-{i}"
                    pspec.setdefault("hostname", pod_name)
                    pspec.setdefault("subdomain", spec.get("serviceName"))
                    claims = {c["metadata"]["name"]: f"{c['metadata']['name']}-{pod_name}"
                              for c in spec.get("volumeClaimTemplates", [])}
                else:
                    pod_name = f"{name}-{h[:8]}-{i}"
                    claims = {}
                pods.append(Pod(pod_name, kind, name, namespace,
                                tmpl["metadata"].get("labels", {}), pspec, h, i, claims))
        elif kind == "Job":
            tmpl = d["spec"]["template"]
            pods.append(Pod(f"{name}-job", "Job", name, namespace,
                            tmpl["metadata"].get("labels", {}), tmpl["spec"], _hash(tmpl)))
        elif kind == "Pod":
            pods.append(Pod(name, "Pod", name, namespace, meta.get("labels", {}), d["spec"],
                            _hash(d["spec"])))
    return pods


def index(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand_vars(s: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion (unknown references stay as written)."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), s)


class Node:
    """Where pods' files live: one directory per pod, one per volume claim."""

    def __init__(self, root: Path, configmaps: dict, secrets: dict, binaries: dict[str, str]):
        self.root = root
        self.configmaps = configmaps
        self.secrets = secrets
        self.binaries = binaries

    def pod_dir(self, pod: Pod) -> Path:
        return self.root / "pods" / pod.name

    def _volume_dir(self, pod: Pod, vol: dict) -> Path:
        name = vol["name"]
        if name in pod.claims:
            return self.root / "pvc" / pod.claims[name]
        if "persistentVolumeClaim" in vol:
            return self.root / "pvc" / vol["persistentVolumeClaim"]["claimName"]
        return self.pod_dir(pod) / "volumes" / name

    def _volume_data(self, vol: dict) -> dict[str, bytes] | None:
        if "configMap" in vol:
            cm = self.configmaps.get(vol["configMap"]["name"])
            if cm is None:
                raise KeyError(f"ConfigMap {vol['configMap']['name']} not found")
            return {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        if "secret" in vol:
            data = self.secrets.get(vol["secret"]["secretName"])
            if data is None:
                raise KeyError(f"Secret {vol['secret']['secretName']} not found")
            return data
        return None

    def identity(self, pod: Pod, container: dict) -> tuple[int, int, int]:
        """(runAsUser, runAsGroup, fsGroup) of a container (its securityContext over the pod's)."""
        ps = pod.spec.get("securityContext") or {}
        cs = container.get("securityContext") or {}
        uid = cs.get("runAsUser", ps.get("runAsUser", 0))
        gid = cs.get("runAsGroup", ps.get("runAsGroup", 0))
        return uid, gid, ps.get("fsGroup", gid)

    def _own(self, path: Path, uid: int, gid: int, mode: int) -> None:
        if os.geteuid() == 0:
            os.chown(path, uid, gid)
        os.chmod(path, mode)

    def mounts(self, pod: Pod, container: dict) -> dict[str, Path]:
        """Creates the container's volumes; returns mountPath -> local directory or file.

        Ownership as the kubelet leaves it: configMap/secret files root:fsGroup with the volume's
        defaultMode, claims and emptyDirs writable by the pod's user and fsGroup."""
        uid, _, fs_group = self.identity(pod, container)
        for d in (self.root, self.root / "pods", self.root / "pvc", self.pod_dir(pod),
                  self.pod_dir(pod) / "volumes"):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)
        vols = {v["name"]: v for v in pod.spec.get("volumes", [])}
        for claim in pod.claims:
            vols.setdefault(claim, {"name": claim})
        out = {}
        for m in container.get("volumeMounts", []):
            vol = vols[m["name"]]
            d = self._volume_dir(pod, vol)
            d.mkdir(parents=True, exist_ok=True)
            data = self._volume_data(vol)
            if data is not None:
                src = vol.get("configMap") or vol.get("secret") or {}
                mode = src.get("defaultMode", 0o644)
                self._own(d, 0, fs_group, 0o755)
                for k, v in data.items():
                    (d / k).write_bytes(v)
                    self._own(d / k, 0, fs_group, mode)
            else:
                self._own(d, uid, fs_group, 0o2770)
            target = d / m["subPath"] if m.get("subPath") else d
            out[m["mountPath"]] = target
        return out

    def env(self, pod: Pod, container: dict, ip: str, node_name: str = "local") -> dict[str, str]:
        env: dict[str, str] = {}
        for src in container.get("envFrom", []):
            if "configMapRef" in src:
                env.update((self.configmaps[src["configMapRef"]["name"]].get("data") or {}))
            if "secretRef" in src:
                env.update({k: v.decode() for k, v in self.secrets[src["secretRef"]["name"]].items()})
        fields = {"metadata.name": pod.name, "metadata.namespace": pod.namespace,
                  "status.podIP": ip, "spec.nodeName": node_name, "status.hostIP": ip,
                  "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default")}
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = expand_vars(str(e["value"]), env)
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "fieldRef" in vf:
                    env[e["name"]] = fields[vf["fieldRef"]["fieldPath"]]
                elif "secretKeyRef" in vf:
                    r = vf["secretKeyRef"]
                    env[e["name"]] = self.secrets[r["name"]][r["key"]].decode()
                elif "configMapKeyRef" in vf:
                    r = vf["configMapKeyRef"]
                    env[e["name"]] = self.configmaps[r["name"]]["data"][r["key"]]
            else:
                env[e["name"]] = ""
        return env

    def argv(self, container: dict, env: dict[str, str], mounts: dict[str, Path]) -> list[str]:
        cmd = list(container.get("command", [])) + list(container.get("args", []))
        if not cmd:
            raise ValueError(f"container {container['name']}: no command (images run no entrypoint scripts here)")
        cmd = [remap(expand_vars(c, env), mounts) for c in cmd]
        exe = self.binaries.get(cmd[0])
        if exe is None:
            raise KeyError(f"container {container['name']}: no local binary for {cmd[0]}")
        return [exe] + cmd[1:]

    def process_env(self, pod: Pod, env: dict[str, str], mounts: dict[str, Path]) -> dict[str, str]:
        home = self.pod_dir(pod) / "home"
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o777)
        out = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
        out.update({k: remap(v, mounts) for k, v in env.items()})
        return out

    def reset_pod(self, pod: Pod) -> None:
        """Forgets a pod's ephemeral files (a new pod); claims are kept."""
        shutil.rmtree(self.pod_dir(pod), ignore_errors=True)


def remap(s: str, mounts: dict[str, Path]) -> str:
    for mp in sorted(mounts, key=len, reverse=True):
        s = re.sub(re.escape(mp) + r"(?=/|$|[^A-Za-z0-9_.-])", str(mounts[mp]), s)
    return s


def remap_files(mounts: dict[str, Path]) -> None:
    """Mounted config files that name other mount paths get the local paths too."""
    for target in mounts.values():
        files = [target] if target.is_file() else [p for p in target.iterdir() if p.is_file()] if target.is_dir() else []
        for f in files:
            try:
                text = f.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            new = remap(text, mounts)
            if new != text:
                f.write_text(new)


def make_secrets(strata: str, d: Path, docs: list[dict]) -> dict[str, dict[str, bytes]]:
    """The Secrets that values-production.yaml names, made as an operator would (README) or as
    cert-manager would: strata-token-key (HS256 key), strata-admin-token (a token for `admin`),
    and each Certificate's TLS Secret (self-signed)."""
    d.mkdir(parents=True, exist_ok=True)
    key = d / "secret.key"
    subprocess.run([strata, "tokens", "create-secret-key", "--output", str(key)], check=True,
                   capture_output=True)
    token = subprocess.run([strata, "tokens", "create", "--secret-key", f"file://{key}", "--subject", "admin"],
                           check=True, capture_output=True, text=True).stdout.strip()
    out = {"strata-token-key": {"secret.key": key.read_bytes()},
           "strata-admin-token": {"token": token.encode()}}
    for cert in (x for x in docs if x.get("kind") == "Certificate"):
        sans = ",".join(f"DNS:{n}" for n in cert["spec"].get("dnsNames", []))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(d / "tls.key"), "-out", str(d / "tls.crt"), "-days", "2",
                        "-subj", "/CN=strata-broker", "-addext", f"subjectAltName={sans}"],
                       check=True, capture_output=True)
        out[cert["spec"]["secretName"]] = {"tls.crt": (d / "tls.crt").read_bytes(),
                                           "tls.key": (d / "tls.key").read_bytes()}
    return out


def strata_containers(pod: Pod) -> list[dict]:
    return [c for c in pod.spec.get("initContainers", []) + pod.spec.get("containers", [])
            if (c.get("command") or [""])[0].endswith("/strata")]
