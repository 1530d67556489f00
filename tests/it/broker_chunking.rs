//! Chunked messages (client-side chunking of payloads above `max_message_size`) pass through the
//! broker and are delivered intact to the official Python client.

use crate::pulsar_python::inline_scenario;

const CHUNKS: &str = r#"
import sys, os, pulsar
c = pulsar.Client(sys.argv[1], operation_timeout_seconds=30, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
cons = c.subscribe("persistent://public/default/chunky", "s", initial_position=pulsar.InitialPosition.Earliest)
p = c.create_producer("persistent://public/default/chunky", chunking_enabled=True, batching_enabled=False)
big = [os.urandom(12 * 1024 * 1024), os.urandom(6 * 1024 * 1024 + 17)]
for b in big:
    p.send(b)
p.send(b"small")
for want in big + [b"small"]:
    m = cons.receive(30000)
    assert m.data() == want, f"payload of {len(want)} bytes damaged ({len(m.data())} received)"
    cons.acknowledge(m)
c.close()
print("OK")
"#;

#[test]
fn chunked_messages_are_delivered_intact() {
    inline_scenario(CHUNKS, false);
}
