"""Helpers shared by the acceptance scripts (run with the official `pulsar-client` 3.x).

Every script takes the broker URL (pulsar://host:port) and the HTTP URL (http://host:port) as
arguments, exits 0 on success and raises (exit 1) with a message on the first failed check.
"""
import sys
import time
import uuid
import json
import urllib.request

import pulsar

RECEIVE_MS = 10_000


def urls():
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} pulsar://host:port [http://host:port]")
    return sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)


def client(url, **kw):
    return pulsar.Client(
        url,
        operation_timeout_seconds=20,
        connection_timeout_ms=5000,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn),
        **kw,
    )


def topic(prefix):
    """A fresh topic name so scripts never see each other's data."""
    return f"persistent://public/default/{prefix}-{uuid.uuid4().hex[:8]}"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def receive_n(consumer, n, ack=True, timeout_ms=RECEIVE_MS):
    out = []
    for _ in range(n):
        m = consumer.receive(timeout_millis=timeout_ms)
        out.append(m)
        if ack:
            consumer.acknowledge(m)
    return out


def receive_until(consumer, n, seconds, keep=lambda data, got: True):
    """Receives and acknowledges until `n` payloads for which `keep(data, kept so far)` holds
    arrived, or `seconds` passed; returns the kept payloads."""
    got = []
    deadline = time.time() + seconds
    while len(got) < n and time.time() < deadline:
        try:
            m = consumer.receive(timeout_millis=2000)
        except pulsar.Timeout:
            continue
        consumer.acknowledge(m)
        if keep(m.data(), got):
            got.append(m.data())
    return got


def expect_nothing(consumer, timeout_ms=1000):
    try:
        m = consumer.receive(timeout_millis=timeout_ms)
    except pulsar.Timeout:
        return
    raise AssertionError(f"unexpected extra message {m.data()!r} id={m.message_id()}")


def send_all(producer, bodies, **kw):
    """Sends asynchronously (so batching can group), then waits for every receipt."""
    ids = [None] * len(bodies)
    errors = []

    def cb(i):
        def done(res, msg_id):
            if res != pulsar.Result.Ok:
                errors.append((i, res))
            ids[i] = msg_id
        return done

    for i, b in enumerate(bodies):
        producer.send_async(b, cb(i), **kw)
    producer.flush()
    deadline = time.time() + 20
    while any(x is None for x in ids) and not errors and time.time() < deadline:
        time.sleep(0.01)
    check(not errors, f"send failed: {errors[:3]}")
    check(all(x is not None for x in ids), "missing send receipts")
    return ids


def create_partitioned(http, name, partitions):
    path = name.replace("persistent://", "persistent/")
    req = urllib.request.Request(
        f"{http}/admin/v2/{path}/partitions",
        data=json.dumps(partitions).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        check(200 <= r.status < 300, f"create partitioned topic: HTTP {r.status}")


def rest(http, method, path, body=None):
    """An admin REST call on `http` with a JSON body; returns the decoded JSON answer (or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(http + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=15) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def done(name):
    print(f"OK {name}")
