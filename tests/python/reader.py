"""Readers: from the earliest message, and from a message id (exclusive and inclusive)."""
import pulsar
from common import *

url, _ = urls()
c = client(url)
for batching in [False, True]:
    t = topic("reader")
    p = c.create_producer(t, batching_enabled=batching, batching_max_messages=7)
    bodies = [f"r-{i}".encode() for i in range(30)]
    ids = send_all(p, bodies)

    r = c.create_reader(t, pulsar.MessageId.earliest)
    got = [r.read_next(RECEIVE_MS) for _ in range(30)]
    check([m.data() for m in got] == bodies, f"reader from earliest (batching={batching})")
    check(not r.has_message_available(), "no more messages after the last")
    r.close()

    r = c.create_reader(t, ids[10])
    got = [r.read_next(RECEIVE_MS).data() for _ in range(19)]
    check(got == bodies[11:], f"reader after id 10, exclusive (batching={batching}): {got[:3]}")
    r.close()

    r = c.create_reader(t, ids[10], start_message_id_inclusive=True)
    got = [r.read_next(RECEIVE_MS).data() for _ in range(20)]
    check(got == bodies[10:], f"reader from id 10, inclusive (batching={batching}): {got[:3]}")
    r.close()

    # A reader from latest sees only new messages.
    r = c.create_reader(t, pulsar.MessageId.latest)
    p.send(b"new")
    check(r.read_next(RECEIVE_MS).data() == b"new", "reader from latest sees new messages")
    r.close()
    p.close()
c.close()
done("reader")
