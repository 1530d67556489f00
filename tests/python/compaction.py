"""Topic compaction through the official client.

`compaction.py PULSAR HTTP produce TOPIC`: 20 keys written 3 times (the last round removes
keys 0-4 with tombstones), compaction over REST until SUCCESS, then a compacted reader sees
exactly keys 5-19 with their last values, and a normal reader sees every message.
`compaction.py PULSAR HTTP verify TOPIC`: after a restart, the compacted view is the same, and
a message written after the compaction follows it.
`compaction.py PULSAR HTTP auto TOPIC`: with the namespace's compactionThreshold at 1 byte,
the same writes are compacted without any trigger (the broker's policy task starts it).
HTTP may name several brokers (comma separated): admin calls go to the first that serves the
topic (a cluster's other brokers answer with a redirect or an error).
"""
import json
import sys
import time
import urllib.error
import urllib.request

import pulsar
from common import client, check, urls

url, http = urls()
mode, topic = sys.argv[3], sys.argv[4]
local = topic.split("://", 1)[1]


def http_call(method, path):
    last = None
    for base in http.split(","):
        req = urllib.request.Request(f"{base}{path}", method=method, data=b"" if method == "PUT" else None)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.read().decode()
        except (urllib.error.URLError, ConnectionError) as e:
            last = e
    raise AssertionError(f"{method} {path}: no broker served it ({last})")


def read_all(c, compacted):
    r = c.create_reader(topic, pulsar.MessageId.earliest, is_read_compacted=compacted)
    out = []
    while r.has_message_available():
        m = r.read_next(10_000)
        out.append((m.partition_key(), m.data()))
    r.close()
    return out


def expected():
    return [(f"k{i}", f"v2-{i}".encode()) for i in range(5, 20)]


def write_rounds(c):
    """Three rounds over k0-k19; the last one ends with tombstones for k0-k4, so the topic's
    last message is one the compacted view does not have: a compacted reader must not wait for
    it (GET_LAST_MESSAGE_ID answers the view's last message)."""
    p = c.create_producer(topic, batching_enabled=False)
    for rnd in range(3):
        for i in list(range(5, 20)) + list(range(5)):
            if rnd == 2 and i < 5:
                p.send(None, partition_key=f"k{i}")
            else:
                p.send(f"v{rnd}-{i}".encode(), partition_key=f"k{i}")
    p.close()


c = client(url)
if mode == "auto":
    ns = "/".join(local.split("/")[:2])
    req = urllib.request.Request(f"{http.split(',')[0]}/admin/v2/namespaces/{ns}/compactionThreshold",
                                 method="PUT", data=b"1", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=20).read()
    write_rounds(c)
    deadline = time.time() + 60
    while True:
        st = json.loads(http_call("GET", f"/admin/v2/persistent/{local}/compaction"))
        got = read_all(c, True) if st["status"] == "SUCCESS" else None
        if got == expected():
            break
        check(time.time() < deadline, f"no automatic compaction: {st} {got}")
        time.sleep(0.5)
elif mode == "produce":
    write_rounds(c)
    http_call("PUT", f"/admin/v2/persistent/{local}/compaction")
    deadline = time.time() + 60
    while True:
        st = json.loads(http_call("GET", f"/admin/v2/persistent/{local}/compaction"))
        if st["status"] != "RUNNING":
            break
        check(time.time() < deadline, "compaction did not finish")
        time.sleep(0.2)
    check(st["status"] == "SUCCESS", f"compaction status {st}")
    got = read_all(c, True)
    check(got == expected(), f"compacted view {got}")
    full = read_all(c, False)
    check(len(full) == 60, f"full view has {len(full)} messages")
else:
    got = read_all(c, True)
    check(got == expected(), f"compacted view after restart {got}")
    p = c.create_producer(topic, batching_enabled=False)
    p.send(b"tail", partition_key="k0")
    p.close()
    got = read_all(c, True)
    check(got == expected() + [("k0", b"tail")], f"compacted view then the tail {got}")
c.close()
print("OK")
