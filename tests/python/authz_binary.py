"""One role against the binary protocol (authorization matrix, tests/it/authz.rs).

usage: authz_binary.py pulsar://host:port TOKEN|- TOPIC SUBSCRIPTION PAYLOAD
Tries PARTITIONED_METADATA/LOOKUP (get_topic_partitions), PRODUCER (+ one SEND of PAYLOAD) and
SUBSCRIBE (+ receiving what is there) and prints one JSON object: op -> "ok" | "refused: ...",
plus "received": the payloads the role could read.
"""
import json
import sys

import pulsar

url, token, topic, sub, payload = sys.argv[1:6]
kw = {}
if token != "-":
    kw["authentication"] = pulsar.AuthenticationToken(token)
client = pulsar.Client(
    url,
    operation_timeout_seconds=5,
    connection_timeout_ms=3000,
    logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error),
    **kw,
)
out = {"received": []}


def attempt(name, f):
    try:
        f()
        out[name] = "ok"
    except Exception as e:  # noqa: BLE001 - every refusal is an outcome to report
        out[name] = f"refused: {type(e).__name__}: {e}"


attempt("partitioned_metadata", lambda: client.get_topic_partitions(topic))


def produce():
    p = client.create_producer(topic, batching_enabled=False, send_timeout_millis=5000)
    p.send(payload.encode())
    p.close()


attempt("producer", produce)


def subscribe():
    c = client.subscribe(
        topic, sub, initial_position=pulsar.InitialPosition.Earliest
    )
    try:
        while True:
            m = c.receive(timeout_millis=1500)
            out["received"].append(m.data().decode(errors="replace"))
            c.acknowledge(m)
    except pulsar.Timeout:
        pass
    c.close()


attempt("subscribe", subscribe)
client.close()
print(json.dumps(out))
