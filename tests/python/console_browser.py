#!/usr/bin/env python3
"""Browser tests of the web console: headless Chromium driven through WebDriver (selenium), against
a `strata standalone` with token authentication on, with the official client producing.

    console_browser.py actions PULSAR_URL HTTP_URL ARTIFACTS ADMIN_TOKEN VIEWER_TOKEN [EXPIRED_TOKEN]
        log in with a token, browse to a topic, see its rate move while a producer and a consumer
        run, peek, clear a backlog, reset a cursor, edit a namespace policy, create and delete
        topics; a role without permission sees the refusal (401 without
        WWW-Authenticate, as Pulsar) in the page, an expired token the
        401 and the login form.
    console_browser.py scale PULSAR_URL HTTP_URL ARTIFACTS ADMIN_TOKEN TOPICS
        TOPICS topics in one namespace; reports how long the topic list page takes to show
        (measured in the browser with performance.now()), and that search finds one of them.

Screenshots go to ARTIFACTS. Prints `OK` at the end on success. Chromium and chromedriver come
from CHROMIUM / CHROMEDRIVER (default: Debian's /usr/bin/chromium and /usr/bin/chromedriver).
"""

import atexit
import concurrent.futures
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pulsar
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 30


def rest(http, method, path, token, body=None):
    """One admin REST call; returns (status, parsed body or text)."""
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    req = urllib.request.Request(http + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        status = e.code
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def ok(http, method, path, token, body=None):
    status, out = rest(http, method, path, token, body)
    assert status in (200, 204), f"{method} {path}: {status} {out}"
    return out


def browser():
    opts = Options()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    # A fresh profile outside the artifacts, removed when the script ends.
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    atexit.register(shutil.rmtree, profile, ignore_errors=True)
    for a in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=1400,1100", "--no-first-run", "--no-default-browser-check",
        "--disable-extensions", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-features=Translate,OptimizationHints,MediaRouter",
        f"--user-data-dir={profile}",
    ]:
        opts.add_argument(a)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(WAIT)
    return d


class Page:
    """The driver plus the waits and screenshots the scenarios use."""

    def __init__(self, driver, http, artifacts):
        self.d = driver
        self.http = http
        self.artifacts = artifacts
        self.shots = 0

    def open(self, hash_route=""):
        self.d.get(f"{self.http}/console/{hash_route}")

    def go(self, hash_route):
        self.d.execute_script("window.location.hash = arguments[0]", hash_route)

    def wait(self, what, f, timeout=WAIT):
        def attempt(_):
            try:
                return f()
            except StaleElementReferenceException:
                return False
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.1).until(attempt)
        except Exception:
            self.shot(f"failed-{what.replace(' ', '-')}")
            raise AssertionError(f"timed out waiting for {what}; page text:\n{self.text()[:3000]}")

    def el(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def els(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def present(self, css):
        return self.wait(css, lambda: self.els(css) and self.els(css)[0])

    def text(self):
        return self.d.find_element(By.TAG_NAME, "body").text

    def rendered(self, name):
        """Waits for the page `name` to report itself rendered; returns its timing entry."""
        return self.wait(f"{name} rendered", lambda: self.d.execute_script(
            "const t = window.strataConsole && window.strataConsole.timings;"
            "const last = t && t[t.length - 1];"
            "return last && last.name === arguments[0] ? last : null;", name))

    def banner(self):
        b = self.el("#banner")
        return b.find_element(By.CSS_SELECTOR, ".text").text if b.is_displayed() else ""

    def shot(self, name):
        self.shots += 1
        path = os.path.join(self.artifacts, f"{self.shots:02d}-{name}.png")
        # The whole page: grow the window to the document's height for the shot.
        height = self.d.execute_script("return document.documentElement.scrollHeight")
        self.d.set_window_size(1400, min(max(height, 600) + 120, 6000))
        self.d.save_screenshot(path)
        self.d.set_window_size(1400, 1100)
        print(f"screenshot {path}")

    def row(self, table_css, key):
        for tr in self.els(f"{table_css} tbody tr"):
            if tr.get_attribute("data-key") == key:
                return tr
        return None

    def login(self, token):
        self.present("#login-form")
        box = self.el("#token")
        box.clear()
        box.send_keys(token)
        self.el("#login-submit").click()


class Producer(threading.Thread):
    """The official client publishing about `rate` messages per second until stopped."""

    def __init__(self, url, token, topic, rate=200):
        super().__init__(daemon=True)
        self.client = pulsar.Client(url, authentication=pulsar.AuthenticationToken(token),
                                    operation_timeout_seconds=30)
        self.producer = self.client.create_producer(topic, producer_name="console-test-producer",
                                                    batching_enabled=False)
        self.rate = rate
        self.sent = 0
        self.stop = threading.Event()

    def run(self):
        n = 0
        while not self.stop.is_set():
            start = time.time()
            for _ in range(self.rate // 10):
                self.producer.send_async(f"order {n}".encode(), None, properties={"n": str(n)})
                n += 1
            self.sent = n
            time.sleep(max(0.0, 0.1 - (time.time() - start)))
        self.producer.flush()

    def close(self):
        self.stop.set()
        self.join(30)
        self.producer.close()
        self.client.close()


class Consumer(threading.Thread):
    """The official client receiving and acknowledging on a subscription until stopped."""

    def __init__(self, url, token, topic, sub):
        super().__init__(daemon=True)
        self.client = pulsar.Client(url, authentication=pulsar.AuthenticationToken(token),
                                    operation_timeout_seconds=30)
        self.consumer = self.client.subscribe(topic, sub, consumer_name="console-test-consumer",
                                              consumer_type=pulsar.ConsumerType.Shared)
        self.received = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                m = self.consumer.receive(200)
            except pulsar.Timeout:
                continue
            self.consumer.acknowledge(m)
            self.received += 1

    def close(self):
        self.stop.set()
        self.join(30)
        self.consumer.close()
        self.client.close()


def topic_stats(http, token, path):
    return ok(http, "GET", f"/admin/v2/persistent/{path}/stats", token)


def actions(url, http, artifacts, admin, viewer, expired=None):
    ok(http, "PUT", "/admin/v2/tenants/acme", admin, {"adminRoles": ["acme-admin"], "allowedClusters": ["standalone"]})
    ok(http, "PUT", "/admin/v2/namespaces/acme/shop", admin)
    ok(http, "PUT", "/admin/v2/persistent/acme/shop/orders", admin)
    d = browser()
    p = Page(d, http, artifacts)
    producer = None
    consumer = None
    try:
        # Without a token the API answers 401: the console shows why and asks for one.
        p.open()
        p.present("#login-form")
        p.wait("401 banner", lambda: "401" in p.banner())
        print(f"without a token: {p.banner()!r}")
        p.shot("login-required")
        p.login(admin)
        p.rendered("overview")
        p.wait("cluster table", lambda: "standalone" in p.el("#clusters").text)
        assert "Signed in as admin" in p.el("#who").text, p.el("#who").text
        assert p.banner() == "", f"the 401 banner outlived the login: {p.banner()!r}"
        p.shot("overview")

        # Browse: tenants → acme → shop → orders, by clicking links.
        p.d.find_element(By.LINK_TEXT, "acme").click()
        p.rendered("tenant")
        p.d.find_element(By.LINK_TEXT, "acme/shop").click()
        p.rendered("topics")
        p.d.find_element(By.LINK_TEXT, "orders").click()
        p.rendered("topic")
        assert "persistent://acme/shop/orders" in p.el("h1.topic-name").text

        # A subscription from the earliest message, made through the page's form.
        p.el("#new-sub").send_keys("audit")
        p.el("#new-sub-position").send_keys("from earliest")
        p.el("#create-sub").click()
        p.wait("subscription row", lambda: p.row("#subscriptions", "audit"))
        assert "audit" in topic_stats(http, admin, "acme/shop/orders")["subscriptions"]

        # A producer and a consumer run: the rates shown move off zero, the consumer is listed,
        # and the backlog of `audit` (no consumer) grows.
        consumer = Consumer(url, admin, "persistent://acme/shop/orders", "live")
        consumer.start()
        producer = Producer(url, admin, "persistent://acme/shop/orders")
        producer.start()
        seen = []

        def rate_moving():
            v = p.el("#rate-in").get_attribute("data-value")
            if v and (not seen or seen[-1] != float(v)):
                seen.append(float(v))
            return seen and seen[-1] > 0

        p.wait("rate in > 0", rate_moving, timeout=60)
        p.wait("backlog > 0", lambda: (p.row("#subscriptions", "audit").find_element(By.CSS_SELECTOR, "td.backlog").text not in ("0", "–")))
        time.sleep(3)
        rate_moving()
        print(f"rate in shown while producing (msg/s, successive values): {seen}")
        assert max(seen) > 10, seen
        assert p.el("svg.chart path.line.s-in").get_attribute("d").count("L") >= 1
        p.wait("producer listed", lambda: "console-test-producer" in p.el("#publishers").text)
        p.wait("consumer listed", lambda: "console-test-consumer" in p.el("#consumers").text)
        p.wait("rate out > 0", lambda: float(p.el("#rate-out").get_attribute("data-value") or 0) > 0)
        print(f"rate out shown: {p.el('#rate-out').text} msg/s; consumers table: {p.el('#consumers tbody').text!r}")
        p.shot("topic-live")

        # Peek at the first messages of the subscription.
        p.row("#subscriptions", "audit").find_element(By.XPATH, ".//button[text()='Peek']").click()
        p.wait("peeked messages", lambda: len(p.els("#peek-table tbody tr")) >= 5)
        first = p.els("#peek-table tbody tr")[0].text
        print(f"peeked: {first!r}")
        assert "order 0" in first and "n=0" in first, first
        p.shot("peek")

        producer.close()
        producer = None
        consumer.close()
        consumer = None
        backlog = topic_stats(http, admin, "acme/shop/orders")["subscriptions"]["audit"]["msgBacklog"]
        assert backlog > 0, backlog
        # After the producer stopped, the rate falls back to 0 (the broker averages over 10 s).
        p.wait("rate in back to 0", lambda: p.el("#rate-in").get_attribute("data-value") == "0", timeout=40)

        # Clear the backlog (a confirm dialog first).
        p.row("#subscriptions", "audit").find_element(By.CSS_SELECTOR, "button.clear-backlog").click()
        p.d.switch_to.alert.accept()
        p.wait("banner: cleared", lambda: "Cleared the backlog of audit" in p.banner())
        p.wait("backlog 0 in page", lambda: p.row("#subscriptions", "audit").find_element(By.CSS_SELECTOR, "td.backlog").text == "0")
        after = topic_stats(http, admin, "acme/shop/orders")["subscriptions"]["audit"]["msgBacklog"]
        print(f"backlog before clearing: {backlog}, after: {after}")
        assert after == 0, after
        p.shot("backlog-cleared")

        # Reset the cursor to the earliest message: the backlog is back.
        p.el("#reset-sub").send_keys("audit")
        p.el("#reset-mode").send_keys("earliest message")
        p.el("#reset-cursor").click()
        p.wait("banner: reset", lambda: "Cursor reset" in p.banner())
        reset = topic_stats(http, admin, "acme/shop/orders")["subscriptions"]["audit"]["msgBacklog"]
        assert reset == backlog, (reset, backlog)

        # Delete the subscription the consumer used (it has disconnected).
        p.row("#subscriptions", "live").find_element(By.CSS_SELECTOR, "button.danger").click()
        p.d.switch_to.alert.accept()
        p.wait("live subscription gone", lambda: not p.row("#subscriptions", "live"))
        assert ok(http, "GET", "/admin/v2/persistent/acme/shop/orders/subscriptions", admin) == ["audit"]

        # Edit a namespace policy.
        p.go("#/ns/acme/shop")
        p.rendered("topics")
        p.present("#policy-messageTTL-v")
        ttl = p.el("#policy-messageTTL-v")
        ttl.clear()
        ttl.send_keys("3600")
        p.el("#save-messageTTL").click()
        p.wait("banner: TTL saved", lambda: "Message TTL saved" in p.banner())
        assert ok(http, "GET", "/admin/v2/namespaces/acme/shop", admin)["message_ttl_in_seconds"] == 3600

        # Create a topic, then delete it from its page.
        p.el("#new-topic").send_keys("scratch")
        p.el("#create-topic button").click()
        p.wait("scratch listed", lambda: p.d.find_elements(By.LINK_TEXT, "scratch"))
        p.d.find_element(By.LINK_TEXT, "scratch").click()
        p.rendered("topic")
        p.el("#delete-topic").click()
        p.d.switch_to.alert.accept()
        p.rendered("topics")
        status, _ = rest(http, "GET", "/admin/v2/persistent/acme/shop/scratch/stats", admin)
        assert status == 404, status

        # The same with a partitioned topic (stats merged over its partitions).
        p.el("#new-topic").send_keys("multi")
        p.el("#new-topic-partitions").clear()
        p.el("#new-topic-partitions").send_keys("3")
        p.el("#create-topic button").click()
        p.wait("multi listed", lambda: p.d.find_elements(By.LINK_TEXT, "multi"))
        assert "partitioned (3)" in p.el("#topics").text, p.el("#topics").text
        p.d.find_element(By.LINK_TEXT, "multi").click()
        p.rendered("topic")
        assert "Partitioned topic with 3 partitions" in p.text()
        p.el("#new-sub").send_keys("all")
        p.el("#create-sub").click()
        p.wait("subscription on the partitioned topic", lambda: p.row("#subscriptions", "all"))
        assert ok(http, "GET", "/admin/v2/persistent/acme/shop/multi-partition-2/subscriptions", admin) == ["all"]
        p.el("#delete-topic").click()
        p.d.switch_to.alert.accept()
        p.rendered("topics")
        assert ok(http, "GET", "/admin/v2/persistent/acme/shop/multi/partitions", admin)["partitions"] == 0

        # A role without permission: the page shows the API's refusal, and so does an action.
        p.el("#logout").click()
        p.go("#/login")
        p.login(viewer)
        p.go("#/topic/acme/shop/orders")
        # (401 as Pulsar, without WWW-Authenticate: shown as a refusal, no login form)
        p.wait("refusal in page", lambda: p.els("#stats-status .refusal"))
        refusal = p.el("#stats-status .refusal").text
        print(f"viewer sees: {refusal!r}")
        assert "Not allowed (401)" in refusal, refusal
        assert not p.row("#subscriptions", "audit"), "no data for a refused role"
        p.el("#unload").click()
        p.wait("unload refused", lambda: "Not allowed (401)" in p.banner())
        print(f"viewer's unload: {p.banner()!r}")
        p.shot("refused")

        # An expired token: the API answers 401 and the console asks for a new one, saying why.
        if expired:
            p.el("#logout").click()
            p.go("#/login")
            p.login(expired)
            p.go("#/topic/acme/shop/orders")
            p.present("#login-form")
            p.wait("401 banner for the expired token", lambda: "401" in p.banner())
            print(f"expired token: {p.banner()!r}")
            p.shot("expired-token")
        errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE" and "status of 40" not in e.get("message", "")]
        assert not errors, errors
    finally:
        if producer:
            producer.close()
        if consumer:
            consumer.close()
        d.quit()


def create_topics(http, token, ns, n):
    """`n` topics in `ns` through the REST API, 16 at a time."""
    def one(i):
        ok(http, "PUT", f"/admin/v2/persistent/{ns}/topic-{i:05d}", token)
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(one, range(n)))
    return time.time() - start


def scale(url, http, artifacts, admin, n):
    ok(http, "PUT", "/admin/v2/tenants/big", admin, {"adminRoles": [], "allowedClusters": ["standalone"]})
    ok(http, "PUT", "/admin/v2/namespaces/big/ns", admin)
    took = create_topics(http, admin, "big/ns", n)
    print(f"created {n} topics in {took:.1f} s")
    for _ in range(3):
        start = time.time()
        listed = ok(http, "GET", "/admin/v2/persistent/big/ns", admin)
        print(f"GET topic list ({len(listed)} names) from Python: {(time.time() - start) * 1000:.1f} ms")
    assert len(listed) == n, len(listed)
    d = browser()
    p = Page(d, http, artifacts)
    try:
        p.open("#/login")
        p.login(admin)
        p.rendered("overview")
        # In-page navigation (the usual path: a click in the console), then full page loads.
        in_page = []
        api_wait = []
        for _ in range(5):
            p.go("#/tenants")
            p.rendered("tenants")
            d.execute_script("performance.clearResourceTimings()")
            p.go("#/ns/big/ns")
            in_page.append(p.rendered("topics")["ms"])
            # The slower of the two list requests (topics, partitioned topics; sent together).
            api_wait.append(d.execute_script(
                "return Math.max(...performance.getEntriesByType('resource')"
                ".filter(e => e.name.includes('/admin/v2/persistent/big/ns')).map(e => e.duration))"))
        loads = []
        for _ in range(3):
            # A new document each time (a URL differing only in its hash would not reload).
            p.d.get("about:blank")
            p.open("#/ns/big/ns")
            t = p.rendered("topics")
            loads.append(t["sinceNavigation"])
            sent, answered = d.execute_script(
                "const l = performance.getEntriesByType('resource')"
                ".filter(e => e.name.includes('/admin/v2/persistent/big/ns'));"
                "return [Math.min(...l.map(e => e.startTime)), Math.max(...l.map(e => e.responseEnd))];")
            print(f"full load: list requests sent at {sent:.1f} ms (the page's scripts loaded), "
                  f"answered at {answered:.1f} ms, page rendered at {t['sinceNavigation']:.1f} ms")
        count = p.el("#topic-count").text
        assert count == f"{n:,} topics", count
        assert len(p.els("#topics tbody tr")) == 50
        p.shot("topics-10k")
        search = p.el("#topic-search")
        t0 = time.time()
        search.send_keys(f"topic-{n - 1:05d}")
        p.wait("one search hit", lambda: p.el("#topics").get_attribute("data-count") == "1")
        print(f"search to one hit (WebDriver round trips included): {(time.time() - t0) * 1000:.0f} ms")
        p.el("#topic-search").clear()
        p.go("#/tenants")
        p.rendered("tenants")
        p.go("#/ns/big/ns")
        p.rendered("topics")
        p.el("#page-next").click()
        p.wait("page 2", lambda: p.el("#page-info").text.startswith("page 2 of"))
        print(f"topic list page with {n} topics, in-page navigation to rendered (ms): "
              + ", ".join(f"{x:.1f}" for x in in_page) + f"; median {statistics.median(in_page):.1f}")
        print(f"topic list page with {n} topics, full page load to rendered (ms): "
              + ", ".join(f"{x:.1f}" for x in loads) + f"; median {statistics.median(loads):.1f}")
        print(f"of which waiting for the broker's topic list answer (ms): "
              + ", ".join(f"{x:.1f}" for x in api_wait) + f"; median {statistics.median(api_wait):.1f}")
        print(f"TIMING in_page_median_ms={statistics.median(in_page):.1f} full_load_median_ms={statistics.median(loads):.1f}")
    finally:
        d.quit()


def main():
    mode, url, http, artifacts = sys.argv[1:5]
    os.makedirs(artifacts, exist_ok=True)
    if mode == "actions":
        actions(url, http, artifacts, *sys.argv[5:8])
    elif mode == "scale":
        scale(url, http, artifacts, sys.argv[5], int(sys.argv[6]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("OK")


if __name__ == "__main__":
    main()
