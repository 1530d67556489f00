"""The official Python Pulsar client as the boot test's producer and consumer.

  client.py produce URL TOPIC N OUT          send N messages; OUT: the acknowledged ones (JSON)
  client.py produce-until URL TOPIC STOP OUT send until the file STOP exists; OUT gets one line
                                             per acknowledged message as it is acknowledged
  client.py consume URL TOPIC SUB OUT...     read from the earliest message until every message
                                             in the OUT files arrived (exit 1 naming the missing)
"""

import json
import os
import sys
import time

import pulsar

LOG = os.environ.get("BOOT_CLIENT_LOG", "/dev/null")


def client(url: str) -> pulsar.Client:
    token = os.environ.get("BOOT_TOKEN")
    auth = pulsar.AuthenticationToken(token) if token else None
    tls = {}
    if os.environ.get("BOOT_TLS_CA"):  # the CA that signed the brokers' certificate; names checked
        tls = {"tls_trust_certs_file_path": os.environ["BOOT_TLS_CA"], "tls_validate_hostname": True}
    return pulsar.Client(url, operation_timeout_seconds=30, authentication=auth,
                         logger=pulsar.FileLogger(pulsar.LoggerLevel.Info, LOG), **tls)


def produce(url, topic, n, out):
    c = client(url)
    p = c.create_producer(topic, batching_enabled=False, send_timeout_millis=30000)
    acked = []
    for i in range(int(n)):
        body = f"{topic}|{os.getpid()}|{i}"
        p.send(body.encode())
        acked.append(body)
    with open(out, "w") as f:
        json.dump(acked, f)
    c.close()
    print(f"produced {len(acked)} to {topic}")


def produce_until(url, topic, stop, out):
    c = client(url)
    p = c.create_producer(topic, batching_enabled=False, send_timeout_millis=30000)
    sent = failed = 0
    with open(out, "w") as f:
        while not os.path.exists(stop):
            body = f"{topic}|{os.getpid()}|{sent + failed}"
            try:
                p.send(body.encode())
            except Exception as e:  # not acknowledged: the checker does not expect it
                failed += 1
                print(f"send failed (not acknowledged): {e}", flush=True)
                time.sleep(0.1)
                continue
            sent += 1
            f.write(body + "\n")
            f.flush()
            time.sleep(0.01)
    c.close()
    print(f"produced {sent} acknowledged, {failed} failed sends to {topic}")


def read_expected(paths):
    out = []
    for path in paths:
        with open(path) as f:
            text = f.read()
        out += json.loads(text) if text.lstrip().startswith("[") else text.split()
    return out


def consume(url, topic, sub, *paths):
    expected = read_expected(paths)
    want = set(expected)
    c = client(url)
    consumer = c.subscribe(topic, sub, initial_position=pulsar.InitialPosition.Earliest)
    seen, dups = set(), 0
    deadline = time.monotonic() + 90
    while want - seen and time.monotonic() < deadline:
        try:
            m = consumer.receive(timeout_millis=2000)
        except pulsar.Timeout:
            continue
        body = m.data().decode()
        if body in seen:
            dups += 1
        seen.add(body)
        consumer.acknowledge(m)
    c.close()
    missing = sorted(want - seen)
    print(f"{topic}: expected {len(want)} acknowledged messages, received {len(seen & want)}, "
          f"lost {len(missing)}, duplicates {dups}, unexpected {len(seen - want)}")
    if missing:
        print("missing: " + ", ".join(missing[:20]))
        sys.exit(1)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"produce": produce, "produce-until": produce_until, "consume": consume}[cmd](*args)
