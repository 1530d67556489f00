//! Broker-initiated close: unloading a topic (admin `PUT .../unload`) sends CLOSE_PRODUCER and
//! CLOSE_CONSUMER; the official Python client reconnects by itself and nothing is lost or
//! duplicated across the move.

use crate::pulsar_python::inline_scenario;

const UNLOAD: &str = r#"
import sys, time, urllib.request, pulsar
url, http = sys.argv[1], sys.argv[2]
t = "persistent://public/default/unload-me"
c = pulsar.Client(url, operation_timeout_seconds=30, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
cons = c.subscribe(t, "s", initial_position=pulsar.InitialPosition.Earliest)
p = c.create_producer(t, batching_enabled=False)
for i in range(50):
    p.send(f"m{i}".encode())
got = []
for _ in range(25):
    m = cons.receive(10000); cons.acknowledge(m); got.append(m.data().decode())
for _ in range(2):
    req = urllib.request.Request(f"{http}/admin/v2/persistent/public/default/unload-me/unload", method="PUT")
    assert urllib.request.urlopen(req).status == 204
    time.sleep(0.3)
for i in range(50, 100):
    p.send(f"m{i}".encode())
while len(got) < 100:
    m = cons.receive(15000); cons.acknowledge(m)
    if m.data().decode() not in got:
        got.append(m.data().decode())
assert got == [f"m{i}" for i in range(100)], got[:5]
c.close()
print("OK")
"#;

#[test]
fn unload_closes_clients_and_they_reconnect() {
    if let Some(node) = inline_scenario(UNLOAD, true) {
        assert!(node.log_tail().contains("topic unloaded"));
    }
}
