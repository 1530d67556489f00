"""Tiered storage with the official client.

Phase `produce TOPIC N`: sets the namespace offload threshold to 0 and the deletion lag to 0,
produces N messages with known payloads, then waits until every closed ledger of the topic is
offloaded and deleted from the bookies (internal stats) and the topic stats show the offloaded
size.

Phase `produce-nowait TOPIC N`: the same without the wait; phase `wait-offloaded TOPIC N`: the
wait alone.

Phase `read TOPIC N`: a reader from earliest gets the N messages in order, byte for byte; a
message id of an offloaded ledger is then read again with seek (and get-message-by-id over HTTP).
"""
import hashlib
import sys
import time

import pulsar

from common import client, check, rest


def http_get(http, path):
    return rest(http, "GET", path)


def http_put_json(http, path, body):
    return rest(http, "PUT", path, body)


def payload(i):
    return hashlib.sha256(str(i).encode()).digest() * (1 + i % 7)


def internal(http, topic):
    return http_get(http, f"/admin/v2/persistent/{topic.split('://', 1)[1]}/internalStats")


def produce(url, http, topic, n):
    http_put_json(http, "/admin/v2/namespaces/public/default/offloadDeletionLagMs", 0)
    http_put_json(http, "/admin/v2/namespaces/public/default/offloadThreshold", 0)
    c = client(url)
    p = c.create_producer(topic, batching_enabled=False)
    for i in range(n):
        p.send(payload(i))
    p.close()
    c.close()
    wait_offloaded(url, http, topic, n)


def produce_nowait(url, http, topic, n):
    http_put_json(http, "/admin/v2/namespaces/public/default/offloadDeletionLagMs", 0)
    http_put_json(http, "/admin/v2/namespaces/public/default/offloadThreshold", 0)
    c = client(url)
    p = c.create_producer(topic, batching_enabled=False)
    for i in range(n):
        p.send(payload(i))
    p.close()
    c.close()
    print(f"produced {n}")


def wait_offloaded(url, http, topic, n):
    deadline = time.time() + 60
    while True:
        ls = internal(http, topic)["ledgers"]
        closed = [l for l in ls if l["closed"]]
        if len(closed) >= 2 and all(l["offloaded"] and l["bookiesDeleted"] for l in closed):
            break
        check(time.time() < deadline, f"ledgers not offloaded in time: {ls}")
        time.sleep(0.2)
    stats = http_get(http, f"/admin/v2/persistent/{topic.split('://', 1)[1]}/stats")
    check(stats["offloadedStorageSize"] > 0, f"offloadedStorageSize: {stats}")
    st = http_get(http, f"/admin/v2/persistent/{topic.split('://', 1)[1]}/offload")
    check(st["status"] in ("SUCCESS", "NOT_RUN", "RUNNING"), st)
    print(f"offloaded {len(closed)} ledgers of {len(ls)}")


def read(url, http, topic, n):
    c = client(url)
    r = c.create_reader(topic, pulsar.MessageId.earliest)
    ids = []
    for i in range(n):
        m = r.read_next(20_000)
        check(m.data() == payload(i), f"message {i}: {len(m.data())} bytes differ")
        ids.append(m.message_id())
    check(not r.has_message_available(), "more messages than produced")
    # Seek back into an offloaded ledger.
    # (The C++ reader skips the message it seeked to: the next one is ids[3] or ids[4].)
    r.seek(ids[3])
    m = r.read_next(20_000)
    k = ids.index(m.message_id()) if m.message_id() in ids else -1
    check(k in (3, 4) and m.data() == payload(k), f"seek into an offloaded ledger gave {m.message_id()}")
    r.close()
    ls = internal(http, topic)["ledgers"]
    check(ls[0]["offloaded"], f"first ledger still offloaded after restart: {ls}")
    c.close()
    print(f"read {n} messages in order, byte for byte")


if __name__ == "__main__":
    url, http, phase, topic, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    {"produce": produce, "produce-nowait": produce_nowait, "wait-offloaded": wait_offloaded, "read": read}[phase](url, http, topic, n)
    print("OK")
