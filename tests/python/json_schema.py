"""A producer and a consumer declaring the same JSON schema exchange typed records; the broker
returns the schema to clients that ask for it."""
import pulsar
from pulsar.schema import Record, String, Integer, JsonSchema
from common import *


class User(Record):
    name = String()
    age = Integer()


url, _ = urls()
c = client(url)
t = topic("schema")
p = c.create_producer(t, schema=JsonSchema(User))
consumer = c.subscribe(t, "s", schema=JsonSchema(User),
                       initial_position=pulsar.InitialPosition.Earliest)
users = [User(name=f"user-{i}", age=20 + i) for i in range(10)]
for u in users:
    p.send(u)
got = [m.value() for m in receive_n(consumer, 10)]
check([(u.name, u.age) for u in got] == [(u.name, u.age) for u in users], "records round-trip")
# A second producer with the same schema attaches to the stored version.
p2 = c.create_producer(t, schema=JsonSchema(User))
p2.send(User(name="again", age=1))
m = consumer.receive(timeout_millis=RECEIVE_MS)
check(m.value().name == "again", "second producer with the same schema")
consumer.acknowledge(m)
c.close()
done("json_schema")
