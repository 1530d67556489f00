"""Producer access modes: Exclusive refuses a second producer, WaitForExclusive waits until the
exclusive one leaves, Shared producers coexist."""
import threading
import pulsar
from common import *

url, _ = urls()
c = client(url)
t = topic("access")
s1 = c.create_producer(t)
s2 = c.create_producer(t)
send_all(s1, [b"a"])
send_all(s2, [b"b"])
s1.close()
s2.close()

ex = c.create_producer(t, access_mode=pulsar.ProducerAccessMode.Exclusive)
for mode in [pulsar.ProducerAccessMode.Exclusive, pulsar.ProducerAccessMode.Shared]:
    try:
        c.create_producer(t, access_mode=mode, send_timeout_millis=3000)
        raise AssertionError(f"{mode} producer accepted next to an exclusive one")
    except (pulsar.ProducerBusy, pulsar.ProducerFenced):
        pass

created = threading.Event()
holder = {}


def wait_for_exclusive():
    holder["p"] = c.create_producer(t, access_mode=pulsar.ProducerAccessMode.WaitForExclusive)
    created.set()


th = threading.Thread(target=wait_for_exclusive, daemon=True)
th.start()
time.sleep(1.0)
check(not created.is_set(), "WaitForExclusive waits while the exclusive producer is attached")
ex.close()
check(created.wait(15), "WaitForExclusive producer created once the exclusive one left")
send_all(holder["p"], [b"after"])
r = c.create_reader(t, pulsar.MessageId.earliest)
check([r.read_next(RECEIVE_MS).data() for _ in range(3)] == [b"a", b"b", b"after"], "all stored")
c.close()
done("producer_access_modes")
