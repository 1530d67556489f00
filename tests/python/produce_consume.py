"""Produce and consume with and without batching: content, order, keys, properties, ids."""
import pulsar
from common import *


def run(c, batching):
    t = topic(f"pc-{'batch' if batching else 'single'}")
    consumer = c.subscribe(t, "s", initial_position=pulsar.InitialPosition.Earliest)
    producer = c.create_producer(t, batching_enabled=batching, batching_max_messages=50,
                                 batching_max_publish_delay_ms=20)
    bodies = [f"m-{i}".encode() for i in range(500)]
    ids = send_all(producer, bodies, properties={"p": "v"}, partition_key="key-1")
    check(len(set(str(i) for i in ids)) == len(ids), "message ids are unique")
    if batching:
        entries = {(i.ledger_id(), i.entry_id()) for i in ids}
        check(len(entries) < len(ids), f"batching grouped messages ({len(entries)} entries)")
    got = receive_n(consumer, len(bodies))
    check([m.data() for m in got] == bodies, "all messages, in order")
    check(all(m.partition_key() == "key-1" for m in got), "keys survive")
    check(all(m.properties() == {"p": "v"} for m in got), "properties survive")
    check([str(m.message_id()) for m in got] == [str(i) for i in ids], "consumer sees producer ids")
    expect_nothing(consumer)
    # A single synchronous send works too.
    mid = producer.send(b"sync")
    m = consumer.receive(timeout_millis=RECEIVE_MS)
    check(m.data() == b"sync" and str(m.message_id()) == str(mid), "sync send")
    consumer.acknowledge(m)
    producer.close()
    consumer.close()


url, _ = urls()
c = client(url)
run(c, batching=False)
run(c, batching=True)
c.close()
done("produce_consume")
