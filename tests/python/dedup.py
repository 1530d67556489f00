"""Message deduplication (namespace policy) with the official client (tests/it/dedup.rs).

usage: dedup.py pulsar://... http://... PHASE NAMESPACE
  setup    create NAMESPACE with deduplication enabled
  first    producer "dd" sends sequence ids 0..9; a second producer with the same name is told
           last_sequence_id 9 and sends 5..14 (5..9 are duplicates); after an unload, 10..14 again
  second   (after the broker was SIGKILLed and restarted) producer "dd" resends 12..16
  verify   a reader from the earliest position sees each of 0..16 exactly once, in order
"""
import functools
import sys
import time

import pulsar

import common
from common import check, client

url, http, phase, ns = sys.argv[1:5]
topic = f"persistent://{ns}/dedup"
admin = f"/admin/v2/persistent/{ns}/dedup"


rest = functools.partial(common.rest, http)


def send_range(c, first, last):
    p = c.create_producer(topic, producer_name="dd", batching_enabled=False, send_timeout_millis=20000)
    ids = {}
    for seq in range(first, last + 1):
        ids[seq] = p.send(f"m{seq}".encode(), sequence_id=seq)
    p.close()
    return ids


c = client(url)
if phase == "setup":
    rest("PUT", f"/admin/v2/namespaces/{ns}")
    rest("POST", f"/admin/v2/namespaces/{ns}/deduplication", True)
    check(rest("GET", f"/admin/v2/namespaces/{ns}/deduplication") is True, "policy stored")
elif phase == "first":
    # the topic must be live with the policy applied (policy refresh: 1 s)
    c.create_producer(topic, producer_name="warmup").close()
    time.sleep(2)
    send_range(c, 0, 9)
    p = c.create_producer(topic, producer_name="dd", batching_enabled=False)
    check(p.last_sequence_id() == 9, f"last_sequence_id {p.last_sequence_id()}")
    p.close()
    ids = send_range(c, 5, 14)
    dup = [s for s, mid in ids.items() if mid.ledger_id() < 0 or mid.entry_id() < 0]
    print("duplicate receipts for", dup)
    check(dup == [5, 6, 7, 8, 9], f"duplicates answered with -1:-1: {dup}")
    rest("PUT", f"{admin}/unload")
    time.sleep(1)
    ids = send_range(c, 10, 14)
    dup = [s for s, mid in ids.items() if mid.ledger_id() < 0]
    check(dup == [10, 11, 12, 13, 14], f"duplicates after unload: {dup}")
elif phase == "second":
    time.sleep(2)
    ids = send_range(c, 12, 16)
    dup = [s for s, mid in ids.items() if mid.ledger_id() < 0]
    print("after restart, duplicate receipts for", dup)
    check(dup == [12, 13, 14], f"duplicates after SIGKILL + restart: {dup}")
elif phase == "verify":
    r = c.create_reader(topic, pulsar.MessageId.earliest)
    got = []
    while r.has_message_available():
        got.append(r.read_next(timeout_millis=10_000).data().decode())
    print("read", got)
    check(got == [f"m{i}" for i in range(17)], f"each message exactly once: {got}")
else:
    sys.exit(f"unknown phase {phase}")
c.close()
print("ok", phase)
