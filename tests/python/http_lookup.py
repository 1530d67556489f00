"""With an http:// service URL the client looks topics up over REST (lookup, partitions) and then
speaks the binary protocol to the broker it was given."""
import pulsar
from common import *

_, http = urls()
check(http is not None, "needs the HTTP URL")
c = client(http)
t = topic("http-lookup")
consumer = c.subscribe(t, "s", initial_position=pulsar.InitialPosition.Earliest)
p = c.create_producer(t)
bodies = [f"h-{i}".encode() for i in range(20)]
send_all(p, bodies)
check([m.data() for m in receive_n(consumer, 20)] == bodies, "produce/consume via HTTP lookup")
pt = topic("http-parted")
create_partitioned(http, pt, 2)
check(len(c.get_topic_partitions(pt)) == 2, "partitions via HTTP")
pc = c.subscribe(pt, "s", initial_position=pulsar.InitialPosition.Earliest)
pp = c.create_producer(pt)
send_all(pp, [b"x", b"y", b"z", b"w"])
check(sorted(m.data() for m in receive_n(pc, 4)) == [b"w", b"x", b"y", b"z"], "partitioned via HTTP")
c.close()
done("http_lookup")
