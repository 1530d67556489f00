"""Schema compatibility, strategy x schema change, through the official client and REST.

For each row: a fresh topic gets the strategy at topic level (REST), a producer registers v1
(AVRO), then a producer with the changed schema is created; the row says whether Pulsar accepts
it (IncompatibleSchema otherwise). The same change is also asked of the REST compatibility
endpoint, and POSTed (409 when refused).
"""
import json
import urllib.error
import urllib.request
import uuid

import pulsar
from pulsar.schema import AvroSchema, Integer, Long, Record, String
from common import client, check, urls

url, http = urls()


class V1(Record):
    _sorted_fields = True
    name = String(required=True)
    age = Integer(required=True)


class AddOptional(Record):
    """A nullable field with a default (`"default": null`)."""
    _sorted_fields = True
    name = String(required=True)
    age = Integer(required=True)
    mail = String(required_default=True)


class AddNullableNoDefault(Record):
    """A nullable field without a default: Avro cannot fill it in when reading old data."""
    _sorted_fields = True
    name = String(required=True)
    age = Integer(required=True)
    mail = String()


class AddRequired(Record):
    _sorted_fields = True
    name = String(required=True)
    age = Integer(required=True)
    mail = String(required=True)


class DropRequired(Record):
    _sorted_fields = True
    name = String(required=True)


class ChangeType(Record):
    _sorted_fields = True
    name = String(required=True)
    age = String(required=True)


class Widen(Record):
    _sorted_fields = True
    name = String(required=True)
    age = Long(required=True)


TABLE = [
    ("ALWAYS_COMPATIBLE", ChangeType, True),
    ("ALWAYS_INCOMPATIBLE", AddOptional, False),
    ("BACKWARD", AddOptional, True),
    ("BACKWARD", AddRequired, False),
    ("BACKWARD", AddNullableNoDefault, False),
    ("FORWARD", AddNullableNoDefault, True),
    ("BACKWARD", DropRequired, True),
    ("BACKWARD", ChangeType, False),
    ("BACKWARD", Widen, True),
    ("FORWARD", AddRequired, True),
    ("FORWARD", DropRequired, False),
    ("FORWARD", Widen, False),
    ("FULL", AddOptional, True),
    ("FULL", AddRequired, False),
    ("FULL", DropRequired, False),
    ("BACKWARD_TRANSITIVE", AddOptional, True),
    ("FORWARD_TRANSITIVE", AddRequired, True),
    ("FULL_TRANSITIVE", Widen, False),
]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{http}{path}", method=method, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, None


c = client(url)
rows = 0
for strategy, new, accepted in TABLE:
    local = f"public/default/compat-{uuid.uuid4().hex[:8]}"
    topic = f"persistent://{local}"
    status, _ = call("PUT", f"/admin/v2/persistent/{local}/schemaCompatibilityStrategy", strategy)
    check(status == 204, f"set strategy: {status}")
    p1 = c.create_producer(topic, schema=AvroSchema(V1))
    definition = AvroSchema(new).schema_info().schema()
    status, body = call("POST", f"/admin/v2/schemas/{local}/compatibility",
                        {"type": "AVRO", "schema": definition, "properties": {}})
    check(status == 200 and body["isCompatibility"] == accepted and body["schemaCompatibilityStrategy"] == strategy,
          f"{strategy} {new.__name__}: compatibility {status} {body}")
    try:
        p2 = c.create_producer(topic, schema=AvroSchema(new))
        ok = True
        p2.close()
    except pulsar.IncompatibleSchema:
        ok = False
    check(ok == accepted, f"{strategy} {new.__name__}: producer accepted={ok}, expected {accepted}")
    status, _ = call("POST", f"/admin/v2/schemas/{local}/schema",
                     {"type": "AVRO", "schema": definition, "properties": {}})
    check(status == (200 if accepted else 409), f"{strategy} {new.__name__}: POST schema {status}")
    p1.close()
    rows += 1
    print(f"{strategy:22} {new.__name__:13} -> {'accepted' if accepted else 'refused'}")

# consumers: an incompatible reader schema is refused (ServerError 18)
local = f"public/default/compat-{uuid.uuid4().hex[:8]}"
p = c.create_producer(f"persistent://{local}", schema=AvroSchema(V1))
try:
    c.subscribe(f"persistent://{local}", "s", schema=AvroSchema(ChangeType))
    check(False, "incompatible consumer accepted")
except pulsar.IncompatibleSchema:
    pass
c.subscribe(f"persistent://{local}", "s", schema=AvroSchema(AddOptional)).close()
p.close()

# REST: versions, version lookup, delete (a marker version), then a fresh start
local = f"public/default/compat-{uuid.uuid4().hex[:8]}"
v1 = AvroSchema(V1).schema_info().schema()
v2 = AvroSchema(AddOptional).schema_info().schema()
for d, want in ((v1, 0), (v2, 1), (v1, 0)):
    status, body = call("POST", f"/admin/v2/schemas/{local}/schema", {"type": "AVRO", "schema": d, "properties": {}})
    check(status == 200 and body["version"]["version"] == want, f"POST schema: {status} {body}")
status, body = call("GET", f"/admin/v2/schemas/{local}/schemas")
check(status == 200 and [x["version"] for x in body["getSchemaResponses"]] == [0, 1], f"schemas {body}")
status, body = call("GET", f"/admin/v2/schemas/{local}/schema/0")
check(status == 200 and json.loads(body["data"]) == json.loads(v1) and body["type"] == "AVRO", f"schema/0 {body}")
status, body = call("POST", f"/admin/v2/schemas/{local}/version", {"type": "AVRO", "schema": v2, "properties": {}})
check(status == 200 and body["version"] == 1, f"version {status} {body}")
status, _ = call("POST", f"/admin/v2/schemas/{local}/schema", {"type": "AVRO", "schema": "{not avro", "properties": {}})
check(status == 422, f"invalid definition: {status}")
status, body = call("DELETE", f"/admin/v2/schemas/{local}/schema")
check(status == 200 and body["version"] == 2, f"delete {status} {body}")
status, _ = call("GET", f"/admin/v2/schemas/{local}/schema")
check(status == 404, f"deleted schema still served: {status}")
status, body = call("POST", f"/admin/v2/schemas/{local}/schema",
                    {"type": "AVRO", "schema": AvroSchema(ChangeType).schema_info().schema(), "properties": {}})
check(status == 200 and body["version"]["version"] == 3, f"after delete {status} {body}")

# namespace policies: auto update off, validation enforced
ns = f"public/compat-{uuid.uuid4().hex[:6]}"
check(call("PUT", f"/admin/v2/namespaces/{ns}")[0] == 204, "create namespace")
check(call("GET", f"/admin/v2/namespaces/{ns}/schemaCompatibilityStrategy")[1] == "UNDEFINED", "default strategy")
check(call("POST", f"/admin/v2/namespaces/{ns}/isAllowAutoUpdateSchema", False)[0] == 204, "auto update off")
check(call("GET", f"/admin/v2/namespaces/{ns}/isAllowAutoUpdateSchema")[1] is False, "auto update read back")
t = f"persistent://{ns}/t"
try:
    c.create_producer(t, schema=AvroSchema(V1))
    check(False, "auto update off: a new schema was registered by a producer")
except pulsar.IncompatibleSchema:
    pass
check(call("POST", f"/admin/v2/schemas/{ns}/t/schema", {"type": "AVRO", "schema": v1, "properties": {}})[0] == 200,
      "admin upload with auto update off")
c.create_producer(t, schema=AvroSchema(V1)).close()
check(call("POST", f"/admin/v2/namespaces/{ns}/schemaValidationEnforced", True)[0] == 204, "enforce")
try:
    c.create_producer(t)
    check(False, "validation enforced: a producer without a schema was accepted")
except pulsar.IncompatibleSchema:
    pass
c.close()
print(f"{rows} rows checked")
print("OK")
