"""A live connection whose token expires (tests/it/authz.rs): the broker sends AUTH_CHALLENGE at
expiry, the client can only answer with the same (expired) token, so the broker closes the
connection and later sends fail.

usage: authz_expiry.py pulsar://host:port TOKEN TOPIC SECONDS_UNTIL_EXPIRY
"""
import sys
import time

import pulsar

url, token, topic, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
c = pulsar.Client(
    url,
    authentication=pulsar.AuthenticationToken(token),
    operation_timeout_seconds=5,
    logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error),
)
p = c.create_producer(topic, batching_enabled=False, send_timeout_millis=3000)
p.send(b"before-expiry")
print("sent before expiry")
time.sleep(secs + 3)
try:
    p.send(b"after-expiry")
except Exception as e:  # noqa: BLE001
    print(f"refused after expiry: {type(e).__name__}")
    sys.exit(0)
sys.exit("a send after the token expired succeeded")
