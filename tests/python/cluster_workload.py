"""Cluster acceptance workload with the official `pulsar-client` 3.x (driven by tests/it/cluster).

Three modes, each writing one JSON object per line to --out (flushed every 200 ms and at exit):

  produce  one producer per (topic, index); every message carries its producer name and sequence
           as properties ("producer", "seq") and in the payload ("name:seq|padding"); sends are
           asynchronous with callbacks. Lines:
             {"e":"ack","p":name,"s":seq,"l":ledger,"n":entry,"pt":partition,"b":batch,"t":ack_time,"lat":ms}
             {"e":"err","p":name,"s":seq,"why":result,"t":time}      (send failed: not acknowledged)
             {"e":"end",...counts}
  consume  one consumer (exclusive by default) on all topics, acknowledges every message:
             {"e":"recv","p":..,"s":..,"l":..,"n":..,"pt":..,"b":..,"r":redelivery_count,"t":time}
           stops once --stop-file exists and nothing arrived for --idle-secs (or at --max-secs).
  read     a reader from the earliest message on each topic, until has_message_available() is
           false: {"e":"read",...} lines.

The service URL may list several brokers (pulsar://h:p1,h:p2): the client looks topics up and
reconnects on its own when a broker goes away. Times are time.time() (seconds since the epoch) so
the Rust side can line them up with the faults it injects.
"""
import argparse
import json
import os
import sys
import threading
import time

import pulsar


class Out:
    """Buffered JSON-lines writer, safe to call from the client's callback threads."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1 << 16)
        self.lock = threading.Lock()
        self.buf = []

    def write(self, obj):
        line = json.dumps(obj, separators=(",", ":"))
        with self.lock:
            self.buf.append(line)

    def flush(self):
        with self.lock:
            buf, self.buf = self.buf, []
        if buf:
            self.f.write("\n".join(buf) + "\n")
            self.f.flush()

    def close(self):
        self.flush()
        self.f.close()


def make_client(url, op_timeout):
    return pulsar.Client(
        url,
        operation_timeout_seconds=op_timeout,
        connection_timeout_ms=3000,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Info),
    )


def mid_fields(mid):
    return {
        "l": mid.ledger_id(),
        "n": mid.entry_id(),
        "pt": mid.partition(),
        "b": mid.batch_index(),
    }


def produce(a, out):
    client = make_client(a.url, a.op_timeout)
    producers = []
    for t in a.topic:
        for i in range(a.producers_per_topic):
            name = f"{a.name_prefix}{t.rsplit('/', 1)[-1]}-{i}"
            p = client.create_producer(
                t,
                batching_enabled=a.batching,
                batching_max_messages=a.batch_max,
                batching_max_publish_delay_ms=a.batch_delay_ms,
                max_pending_messages=a.max_pending,
                block_if_queue_full=True,
                send_timeout_millis=a.send_timeout_ms,
            )
            producers.append((name, p))
    print(f"producers ready: {[n for n, _ in producers]}", flush=True)
    counts = {"acked": 0, "errors": 0}
    lock = threading.Lock()
    outstanding = [0]
    pad = "x" * max(0, a.size - 24)

    def callback(name, seq, sent_at):
        def done(res, mid):
            now = time.time()
            with lock:
                outstanding[0] -= 1
                if res == pulsar.Result.Ok:
                    counts["acked"] += 1
                else:
                    counts["errors"] += 1
            if res == pulsar.Result.Ok:
                rec = {"e": "ack", "p": name, "s": seq, "t": now, "lat": (now - sent_at) * 1000.0}
                rec.update(mid_fields(mid))
                out.write(rec)
            else:
                out.write({"e": "err", "p": name, "s": seq, "why": str(res), "t": now})
        return done

    start = time.time()
    deadline = start + a.max_secs
    last_flush = start
    sent = 0
    interval = 1.0 / a.rate if a.rate > 0 else 0.0
    next_at = start
    stopped = False
    for seq in range(a.count):
        for name, p in producers:
            if a.stop_file and os.path.exists(a.stop_file):
                stopped = True
                break
            if time.time() > deadline:
                stopped = True
                break
            if interval:
                next_at += interval
                delay = next_at - time.time()
                if delay > 0:
                    time.sleep(delay)
            body = f"{name}:{seq}|{pad}".encode()
            with lock:
                outstanding[0] += 1
            try:
                p.send_async(body, callback(name, seq, time.time()),
                             properties={"producer": name, "seq": str(seq)})
                sent += 1
            except Exception as e:  # the client refused the send: not acknowledged
                with lock:
                    outstanding[0] -= 1
                    counts["errors"] += 1
                out.write({"e": "err", "p": name, "s": seq, "why": f"send_async: {e}", "t": time.time()})
                time.sleep(0.05)
            now = time.time()
            if now - last_flush > 0.2:
                out.flush()
                last_flush = now
        if stopped:
            break
    # Wait for every callback (acknowledged, failed or timed out).
    wait_until = time.time() + a.drain_secs
    while time.time() < wait_until:
        with lock:
            if outstanding[0] <= 0:
                break
        out.flush()
        time.sleep(0.1)
    with lock:
        left = outstanding[0]
    out.write({"e": "end", "sent": sent, "acked": counts["acked"], "errors": counts["errors"],
               "outstanding": left, "secs": time.time() - start})
    out.flush()
    print(f"produce done: sent {sent} acked {counts['acked']} errors {counts['errors']} "
          f"outstanding {left}", flush=True)
    os._exit(0)  # do not let close() wait for a stalled cluster; everything is on disk


def msg_record(kind, m):
    props = m.properties()
    data = m.data()
    # The payload produce() sent: "name:seq|" then "x" padding ("ok": byte for byte, "len": size).
    head = f"{props.get('producer')}:{props.get('seq')}|".encode()
    ok = data.startswith(head) and data[len(head):].strip(b"x") == b""
    rec = {"e": kind, "p": props.get("producer"), "s": int(props.get("seq", "-1")),
           "t": time.time(), "topic": m.topic_name(), "ok": ok, "len": len(data)}
    rec.update(mid_fields(m.message_id()))
    return rec


def consume(a, out):
    client = make_client(a.url, a.op_timeout)
    types = {"exclusive": pulsar.ConsumerType.Exclusive,
             "failover": pulsar.ConsumerType.Failover,
             "shared": pulsar.ConsumerType.Shared}
    topics = a.topic if len(a.topic) > 1 else a.topic[0]
    consumer = client.subscribe(topics, a.sub, consumer_type=types[a.sub_type],
                                initial_position=pulsar.InitialPosition.Earliest,
                                receiver_queue_size=1000)
    print("consumer ready", flush=True)
    if a.ready_file:
        open(a.ready_file, "w").close()
    start = time.time()
    last_msg = time.time()
    last_flush = start
    n = 0
    while time.time() - start < a.max_secs:
        try:
            m = consumer.receive(timeout_millis=200)
        except pulsar.Timeout:
            m = None
        except Exception as e:
            print(f"receive error: {e}", flush=True)
            time.sleep(0.2)
            m = None
        now = time.time()
        if m is not None:
            rec = msg_record("recv", m)
            rec["r"] = m.redelivery_count()
            out.write(rec)
            if a.ack:
                consumer.acknowledge(m)
            last_msg = now
            n += 1
        if now - last_flush > 0.2:
            out.flush()
            last_flush = now
        if a.stop_file and os.path.exists(a.stop_file) and now - last_msg > a.idle_secs:
            break
    out.write({"e": "end", "received": n})
    out.flush()
    print(f"consume done: received {n}", flush=True)
    # Acks are sent asynchronously (grouped): give them a moment before closing.
    time.sleep(0.5)
    try:
        consumer.close()
    except Exception as e:
        print(f"close: {e}", flush=True)
    os._exit(0)


def read(a, out):
    client = make_client(a.url, a.op_timeout)
    total = 0
    for t in a.topic:
        reader = client.create_reader(t, pulsar.MessageId.earliest)
        n = 0
        while reader.has_message_available():
            m = reader.read_next(timeout_millis=10_000)
            out.write(msg_record("read", m))
            n += 1
            if n % 5000 == 0:
                out.flush()
        reader.close()
        print(f"read {n} from {t}", flush=True)
        total += n
    out.write({"e": "end", "read": total})
    out.flush()
    os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["produce", "consume", "read"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--topic", action="append", required=True)
    ap.add_argument("--op-timeout", type=int, default=30)
    ap.add_argument("--max-secs", type=float, default=120)
    ap.add_argument("--stop-file")
    # produce
    ap.add_argument("--name-prefix", default="")
    ap.add_argument("--producers-per-topic", type=int, default=1)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--rate", type=float, default=0, help="messages/s over all producers; 0: max")
    ap.add_argument("--batching", action="store_true")
    ap.add_argument("--batch-max", type=int, default=200)
    ap.add_argument("--batch-delay-ms", type=int, default=5)
    ap.add_argument("--max-pending", type=int, default=2000)
    ap.add_argument("--send-timeout-ms", type=int, default=30_000)
    ap.add_argument("--drain-secs", type=float, default=60)
    # consume
    ap.add_argument("--sub", default="checker")
    ap.add_argument("--sub-type", default="exclusive", choices=["exclusive", "failover", "shared"])
    ap.add_argument("--idle-secs", type=float, default=5)
    ap.add_argument("--no-ack", dest="ack", action="store_false")
    ap.add_argument("--ready-file")
    a = ap.parse_args()
    out = Out(a.out)
    try:
        {"produce": produce, "consume": consume, "read": read}[a.mode](a, out)
    finally:
        out.close()


if __name__ == "__main__":
    main()
