"""TLS on both ports with the official client.

usage: tls.py MODE pulsar+ssl://host:port https://host:port CA [CERT KEY]

MODE
  plain       produce/consume over pulsar+ssl:// with the CA and hostname verification;
              GET /admin/v2/clusters over https with the CA
  untrusted   the CA given does not sign the server: the client must fail to connect, https too
  mtls        authentication with a client certificate (AuthenticationTLS): produce/consume
              works and an admin call over https with the certificate works
  no-cert     authentication required but neither a token nor a certificate: refused
"""
import os
import ssl
import sys
import urllib.error
import urllib.request

import pulsar

from common import check, topic

mode, url, https, ca = sys.argv[1:5]
cert, key = (sys.argv[5], sys.argv[6]) if len(sys.argv) > 6 else (None, None)


def client(**kw):
    return pulsar.Client(
        url,
        tls_trust_certs_file_path=ca,
        tls_validate_hostname=True,
        tls_allow_insecure_connection=False,
        operation_timeout_seconds=10,
        connection_timeout_ms=5000,
        logger=pulsar.ConsoleLogger(
            pulsar.LoggerLevel.Info if os.environ.get("STRATA_PY_LOG") == "info" else pulsar.LoggerLevel.Error
        ),
        **kw,
    )


def http_get(path):
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    with urllib.request.urlopen(https + path, context=ctx, timeout=10) as r:
        return r.status, r.read()


def round_trip(c):
    t = topic("tls")
    consumer = c.subscribe(t, "s")
    producer = c.create_producer(t)
    for i in range(10):
        producer.send(f"tls-{i}".encode())
    got = [consumer.receive(timeout_millis=10_000).data().decode() for _ in range(10)]
    check(got == [f"tls-{i}" for i in range(10)], f"received {got}")
    c.close()


def producer_refused(name, what):
    """Creating a producer on a fresh topic fails; `what` describes the failure otherwise."""
    c = client()
    try:
        c.create_producer(topic(name))
        raise AssertionError(what)
    except pulsar.PulsarException as e:
        print("refused as expected:", type(e).__name__)
    c.close()


if mode == "plain":
    round_trip(client())
    status, body = http_get("/admin/v2/clusters")
    check(status == 200 and b"standalone" in body, f"https: {status} {body!r}")
elif mode == "mtls":
    round_trip(client(authentication=pulsar.AuthenticationTLS(cert, key)))
    status, body = http_get("/admin/v2/tenants")
    check(status == 200 and b"public" in body, f"https with certificate: {status} {body!r}")
elif mode == "untrusted":
    producer_refused("tls-untrusted", "connected to a server whose certificate the CA does not sign")
    try:
        http_get("/admin/v2/clusters")
        raise AssertionError("https accepted an untrusted server certificate")
    except (ssl.SSLError, urllib.error.URLError) as e:
        print("https refused as expected:", e)
elif mode == "no-cert":
    producer_refused("tls-anon", "anonymous producer accepted while authentication is on")
    try:
        http_get("/admin/v2/tenants")
        raise AssertionError("anonymous https admin call accepted")
    except urllib.error.HTTPError as e:
        check(e.code == 401, f"expected 401, got {e.code}")
else:
    sys.exit(f"unknown mode {mode}")
print("ok", mode)
