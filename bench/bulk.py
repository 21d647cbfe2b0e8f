"""Drives bench/bulk.sh: N creates as single POSTs (one at a time, then 16 at once) and as
one Bulk request, ROUNDS times each, with the writer's counters from /metrics around each
run. Standard library only."""

import http.client
import json
import sys
import threading
import time
import urllib.parse

BASE, TOKEN, ROUNDS, N = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
URL = urllib.parse.urlparse(BASE)
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


def connect():
    return http.client.HTTPConnection(URL.hostname, URL.port, timeout=120)


def user(name):
    return {
        "schemas": [USER_SCHEMA],
        "userName": name,
        "name": {"givenName": "Bench", "familyName": name},
        "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}],
        "active": True,
    }


def send(conn, method, path, body=None):
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=HEADERS)
    resp = conn.getresponse()
    return resp.status, resp.read()


def counters():
    conn = connect()
    status, body = send(conn, "GET", "/metrics")
    assert status == 200, body
    found = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        metric, value = line.split()[0], line.split()[-1]
        for name in ("store_writes", "store_commits"):
            if metric.removeprefix("scimgate_").removesuffix("_total") == name:
                found[name] = float(value)
    return found["store_writes"], found["store_commits"]


def singles(prefix, connections):
    names = [f"{prefix}-{i}" for i in range(N)]
    failures = []

    def worker(part):
        conn = connect()
        for name in part:
            status, body = send(conn, "POST", "/scim/v2/Users", user(name))
            if status != 201:
                failures.append((status, body[:200]))

    parts = [names[i::connections] for i in range(connections)]
    threads = [threading.Thread(target=worker, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]


def bulk(prefix):
    ops = [
        {"method": "POST", "path": "/Users", "bulkId": str(i), "data": user(f"{prefix}-{i}")}
        for i in range(N)
    ]
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}
    status, answer = send(connect(), "POST", "/scim/v2/Bulk", body)
    assert status == 200, answer[:300]
    done = json.loads(answer)["Operations"]
    bad = [o for o in done if o["status"] != "201"]
    assert len(done) == N and not bad, bad[:3]


def measure(label, run):
    writes0, commits0 = counters()
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    writes1, commits1 = counters()
    commits = max(commits1 - commits0, 1)
    print(
        f"{label:<34} {elapsed * 1000:9.0f} ms  {N / elapsed:8.0f} creates/s  "
        f"commits {commits:6.0f}  creates/commit {N / commits:6.1f}  "
        f"writes/commit {(writes1 - writes0) / commits:6.1f}"
    )


for r in range(ROUNDS):
    measure(f"round {r + 1}: {N} POSTs, one at a time", lambda: singles(f"s{r}", 1))
    measure(f"round {r + 1}: {N} POSTs, 16 at once", lambda: singles(f"c{r}", 16))
    measure(f"round {r + 1}: one Bulk of {N} creates", lambda: bulk(f"b{r}"))
