"""Issue 12, acceptance 2: messages written to a standalone whose bookie keeps only a small local
segment cache (the rest in object storage) all read back after a restart.

usage: objstore_standalone.py produce URL TOPIC COUNT SIZE RATE_MIB_S
       objstore_standalone.py check URL TOPIC COUNT SIZE
Payload i is a deterministic function of i (so the check needs no copy of what was sent).
"""
import hashlib
import sys
import time

from common import check, client


def payload(i, size):
    seed = hashlib.sha256(str(i).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def produce(url, topic, n, size, rate_mib):
    c = client(url)
    p = c.create_producer(topic, batching_enabled=False, max_pending_messages=256,
                          block_if_queue_full=True, send_timeout_millis=60_000)
    started = time.time()
    per_s = rate_mib * (1 << 20) / size
    for i in range(n):
        p.send_async(payload(i, size), None, properties={"i": str(i)})
        ahead = i / per_s - (time.time() - started)
        if ahead > 0:
            time.sleep(ahead)
    p.flush()
    took = time.time() - started
    c.close()
    print(f"produced {n} x {size} B in {took:.1f} s")


def verify(url, topic, n, size):
    c = client(url)
    cons = c.subscribe(topic, "check", initial_position=__import__("pulsar").InitialPosition.Earliest)
    started = time.time()
    for i in range(n):
        m = cons.receive(timeout_millis=30_000)
        check(int(m.properties()["i"]) == i, f"message {i}: got {m.properties()}")
        check(m.data() == payload(i, size), f"message {i} differs")
        cons.acknowledge(m)
    took = time.time() - started
    c.close()
    print(f"read back {n}/{n} byte for byte in {took:.1f} s")


def main():
    mode, url, topic, n, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    if mode == "produce":
        produce(url, topic, n, size, float(sys.argv[6]))
    else:
        verify(url, topic, n, size)


if __name__ == "__main__":
    main()
