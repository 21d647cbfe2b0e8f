#!/usr/bin/env python3
"""Load-and-abuse harness (issue 10): hostile requests from tenant "hostile" while tenant
"victim" reads one user by id, one request at a time.

    bench/abuse.py BIN [--only NAME]... [--seconds N] [--keep]

Every scenario gets a fresh server (the real binary, 127.0.0.1, rate limiter off) on a fresh
data folder. Its hostile request runs from 8 concurrent workers (some scenarios use more)
for --seconds (default 10) or a bounded count, whichever ends first. Reported per scenario:
the victim's GET-by-id p50/p99/max and non-2xx count (it runs in its own process, so the
hostile threads' GIL does not skew its clock), the hostile status histogram, the server's
peak RSS during the attack (VmRSS every 20 ms), database growth, and whether the server is
still alive. Rows with victim p99 >= 50 ms or RSS >= 300 MiB are marked OVER. The table is
also written to bench/results/abuse.json. Exit status 1 only when a server died.

Scenarios are rows of SCENARIOS at the bottom: (name, setup function, options). A setup
function gets the running Ctx, prepares data, and returns an Attack. --only NAME matches
a row's name or its group (the part before "/").
"""
import argparse, base64, hashlib, http.client, itertools, json, multiprocessing, os, random, resource
import re, shutil, signal, socket, subprocess, sys, tempfile, threading, time, urllib.parse, uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Optional

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
P99_LIMIT_MS, RSS_LIMIT_MIB = 50.0, 300.0
HOSTILE_TIMEOUT, VICTIM_TIMEOUT = 60.0, 10.0
RESULTS = Path(__file__).resolve().parent / "results"


def dumps(v) -> bytes:
    return json.dumps(v, separators=(",", ":")).encode()


class Conn:
    """One keep-alive HTTP/1.1 connection; a failure closes it and is answered as a label
    ("timeout", "conn-error") instead of a status."""

    def __init__(self, port, timeout=HOSTILE_TIMEOUT, fresh=False):
        self.port, self.timeout, self.fresh, self.c = port, timeout, fresh, None

    def req(self, method, path, token=None, body=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            headers["Content-Type"] = "application/scim+json"
            body = body if isinstance(body, bytes) else dumps(body)
        if self.fresh:
            headers["Connection"] = "close"
        try:
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.c.request(method, path, body=body, headers=headers)
            r = self.c.getresponse()
            data = r.read()
            if self.fresh or r.will_close:
                self.close()
            return r.status, data
        except socket.timeout:
            self.close()
            return "timeout", b""
        except (OSError, http.client.HTTPException):
            self.close()
            return "conn-error", b""

    def close(self):
        self.c = self.c and self.c.close()


class Server:
    def __init__(self, binary, data: Path, config: Optional[str], nofile: Optional[int]):
        self.binary, self.data = binary, data
        self.run("tenant", "add", "hostile")
        self.run("tenant", "add", "victim")
        self.hostile = self.token("hostile", "hostile")
        self.victim = self.token("victim", "victim")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        args = [binary, "serve", "--data", str(data), "--listen", f"127.0.0.1:{self.port}"]
        if config is not None:
            (data / "config.toml").write_text(config)
            args += ["--config", str(data / "config.toml")]
        env = dict(os.environ, SCIMGATE_RATE_LIMIT__ENABLED="false", SCIMGATE_LOG="warn")
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        self.log = open(data / "server.log", "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=self.log,
                                     preexec_fn=limit)
        self.peak_kib, self.rss_stop = 0, threading.Event()
        threading.Thread(target=self.sample_rss, daemon=True).start()
        deadline = time.monotonic() + 30
        while Conn(self.port, 1, fresh=True).req("GET", "/readyz")[0] != 200:
            if time.monotonic() > deadline or not self.alive():
                self.stop()
                raise RuntimeError(f"the server did not become ready; see {data}/server.log")
            time.sleep(0.02)

    def run(self, *args) -> str:
        out = subprocess.run([self.binary, *args, "--data", str(self.data)], capture_output=True,
                             text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"scimgate {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout.strip()

    def token(self, tenant, sub, ttl=3600) -> str:
        return self.run("token", "--tenant", tenant, "--sub", sub, "--ttl", str(ttl))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kib(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                return next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
        except OSError:
            return 0

    def sample_rss(self):
        while not self.rss_stop.is_set() and self.alive():
            self.peak_kib = max(self.peak_kib, self.rss_kib())
            time.sleep(0.02)

    def db_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.data / "scimgate.db", self.data / "scimgate.db-wal")
                   if p.exists())

    def log_tail(self, n=3) -> str:
        lines = (self.data / "server.log").read_bytes().decode("utf8", "replace").splitlines()
        return " | ".join(l[:240] for l in lines[-n:])

    def stop(self):
        self.rss_stop.set()
        if self.alive():
            self.proc.send_signal(signal.SIGINT)  # stops at once; SIGTERM would wait 30 s
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass
class Ctx:
    server: Server
    seconds: float
    notes: dict = field(default_factory=dict)

    def conn(self, **kw) -> Conn:
        return Conn(self.server.port, **kw)

    def bulk(self, requests, token=None, threads=16):
        """Runs (method, path, body) requests from `threads` connections; returns
        [(status, parsed body or None)] in order."""
        token = token or self.server.hostile
        out, todo, lock = [None] * len(requests), iter(enumerate(requests)), threading.Lock()

        def work():
            c = self.conn()
            while True:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return c.close()
                i, (method, path, body) = item
                status, data = c.req(method, path, token, body)
                try:
                    out[i] = (status, json.loads(data) if data else None)
                except ValueError:
                    out[i] = (status, None)

        ts = [threading.Thread(target=work) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return out

    def users(self, names, extra=None, threads=16):
        """Creates users in tenant hostile; returns their ids (fails unless every create is 201)."""
        res = self.bulk([("POST", "/scim/v2/Users", {"schemas": [USER], "userName": n, **(extra or {})})
                         for n in names], threads=threads)
        bad = [s for s, _ in res if s != 201]
        if bad:
            raise RuntimeError(f"setup: {len(bad)} user creates failed, e.g. {bad[0]}")
        return [b["id"] for _, b in res]

    def group(self, name) -> str:
        status, body = self.bulk([("POST", "/scim/v2/Groups", {"schemas": [GROUP], "displayName": name})])[0]
        if status != 201:
            raise RuntimeError(f"setup: group create answered {status}")
        return body["id"]


@dataclass
class Attack:
    """hit(conn, n) sends the n-th hostile request and returns its status or label."""
    hit: Callable
    workers: int = 8
    count: Optional[int] = None          # most hostile requests in all (None: until time runs out)
    during: Optional[Callable] = None    # runs in the main thread while the attack runs: during(ctx, deadline)
    cleanup: Optional[Callable] = None
    victim_fresh: bool = False           # the victim opens a new connection per request


def victim_process(port, token, user_id, fresh, go, stop, pipe):
    """Reads the victim's user by id until told to stop, with a small create every 20th
    request; sends back ([GET latencies in ms], non-2xx count, requests)."""
    c = Conn(port, VICTIM_TIMEOUT, fresh=fresh)
    lat, bad, n = [], 0, 0
    go.wait(30)
    while not stop.is_set() and n < 200_000:
        n += 1
        if n % 20 == 0:
            status, _ = c.req("POST", "/scim/v2/Users?domain=victim", token,
                              {"schemas": [USER], "userName": f"v-{uuid.uuid4().hex[:12]}"})
        else:
            t0 = time.perf_counter()
            status, _ = c.req("GET", f"/scim/v2/Users/{user_id}?domain=victim", token)
            lat.append((time.perf_counter() - t0) * 1000)
        if not (isinstance(status, int) and 200 <= status < 300):
            bad += 1
            if status == "conn-error":
                time.sleep(0.05)  # the server may be gone; the parent stops us
    pipe.send((lat, bad, n))


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))], 1) if xs else None


def run_scenario(binary, name, setup, opts, seconds, keep):
    data = Path(tempfile.mkdtemp(prefix=f"abuse-{name.replace('/', '-')}-"))
    tmp = data / "plugins"
    tmp.mkdir()
    config, row = opts.get("config"), {"scenario": name}
    try:
        server = Server(binary, data / "data", config(tmp) if config else None, opts.get("nofile"))
    except Exception as e:
        shutil.rmtree(data, ignore_errors=True)
        return dict(row, error=f"{type(e).__name__}: {e}", alive=False, verdict="ERROR")
    ctx, stop, victim = Ctx(server, seconds), multiprocessing.Event(), None
    try:
        t0 = time.monotonic()
        st, body = ctx.conn().req("POST", "/scim/v2/Users?domain=victim", server.victim,
                                  {"schemas": [USER], "userName": "victim-reader"})
        if st != 201:
            raise RuntimeError(f"victim setup answered {st}")
        victim_id = json.loads(body)["id"]
        attack = setup(ctx)
        row["setup_s"] = round(time.monotonic() - t0, 1)
        db0 = server.db_bytes()
        rx, tx = multiprocessing.Pipe(False)
        go = multiprocessing.Event()
        victim = multiprocessing.Process(target=victim_process, args=(
            server.port, server.victim, victim_id, attack.victim_fresh, go, stop, tx))
        victim.start()
        server.peak_kib = server.rss_kib()
        row["rss_before_mib"] = round(server.peak_kib / 1024, 1)
        hist, lock, tickets = {}, threading.Lock(), itertools.count()
        deadline = time.monotonic() + seconds
        barrier = threading.Barrier(attack.workers)

        def worker():
            c = ctx.conn()
            barrier.wait()
            while time.monotonic() < deadline and server.alive():
                n = next(tickets)
                if attack.count is not None and n >= attack.count:
                    break
                status = str(attack.hit(c, n))
                with lock:
                    hist[status] = hist.get(status, 0) + 1
            c.close()

        ts = [threading.Thread(target=worker, daemon=True) for _ in range(attack.workers)]
        t1 = time.monotonic()
        go.set()
        for t in ts:
            t.start()
        if attack.during:
            attack.during(ctx, deadline)
        for t in ts:
            t.join(seconds + HOSTILE_TIMEOUT + 5)
        row["attack_s"] = round(time.monotonic() - t1, 1)
        stop.set()
        lat, bad, n = rx.recv() if rx.poll(VICTIM_TIMEOUT + 5) else ([], None, 0)
        if attack.cleanup:
            attack.cleanup(ctx)
        time.sleep(0.5)  # let the writer's last group commit land before measuring growth
        row.update(victim_p50_ms=pct(lat, 0.5), victim_p99_ms=pct(lat, 0.99),
                   victim_max_ms=round(max(lat), 1) if lat else None, victim_non2xx=bad,
                   victim_requests=n, hostile=dict(sorted(hist.items())),
                   peak_rss_mib=round(server.peak_kib / 1024, 1),
                   db_growth_mib=round((server.db_bytes() - db0) / 2**20, 1))
    except Exception as e:  # a setup that failed is a row too, not the end of the run
        row["error"] = f"{type(e).__name__}: {e}"
    stop.set()
    if victim is not None:
        victim.join(5)
        if victim.is_alive():
            victim.kill()
    row["alive"] = server.alive()
    if not row["alive"]:  # a server that died: its exit status (negative: the signal) and last log lines
        row["exit"] = server.proc.returncode
        row["log_tail"] = server.log_tail()
    server.stop()
    row.update(ctx.notes)
    over = [k for k, lim in (("victim_p99_ms", P99_LIMIT_MS), ("peak_rss_mib", RSS_LIMIT_MIB))
            if row.get(k) is not None and row[k] >= lim]
    row["verdict"] = "DIED" if not row["alive"] else "ERROR" if "error" in row else "OVER" if over else "ok"
    if keep:
        row["data"] = str(data)
    else:
        shutil.rmtree(data, ignore_errors=True)
    return row


# ---- scenarios --------------------------------------------------------------------------

def deep_filter(resource):
    def setup(ctx):
        if resource == "Users":
            rid = ctx.users(["deep"], extra={"emails": [{"value": "0"}, {"value": "1"}]})[0]
            attr = "emails"
        else:
            rid, attr = ctx.group("deep"), "members"
        path = f"{attr}[" + " or ".join(f'value eq "{i}"' for i in range(15000)) + "]"
        body = dumps({"schemas": [PATCH], "Operations": [{"op": "remove", "path": path}]})
        ctx.notes["body_kib"] = len(body) // 1024
        return Attack(lambda c, n: c.req("PATCH", f"/scim/v2/{resource}/{rid}", ctx.server.hostile, body)[0])
    return setup


def password_loop(ctx):
    tag = uuid.uuid4().hex[:6]
    return Attack(lambda c, n: c.req("POST", "/scim/v2/Users", ctx.server.hostile, {
        "schemas": [USER], "userName": f"pw-{tag}-{n}", "password": f"Secret-{n}-pass!"})[0])


def password_burst(ctx):
    attack = password_loop(ctx)
    attack.workers = attack.count = 150
    return attack


def big_groups(ctx, query):
    ids = ctx.users([f"member-{i}" for i in range(5000)], threads=24)
    groups = [ctx.group(f"big-{g}") for g in range(40)]
    patches = [("PATCH", f"/scim/v2/Groups/{g}", {"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": i} for i in ids[k:k + 1000]]}]})
        for g in groups for k in range(0, 5000, 1000)]
    bad = [s for s, _ in ctx.bulk(patches, threads=8) if s not in (200, 204)]
    if bad:
        raise RuntimeError(f"setup: {len(bad)} member PATCHes failed, e.g. {bad[0]}")
    return Attack(lambda c, n: c.req("GET", "/scim/v2/Groups?" + query, ctx.server.hostile)[0])


SLOW_SPINS = 40_000_000  # about 40 ms on this machine (`scimgate plugin run` times a call)


def plugin_config(tmp: Path) -> str:
    accept = '(data (i32.const 1024) "{\\"decision\\":\\"accept\\"}")'
    head = ('(memory (export "memory") 4) (global (export "scim_abi_v1") i32 (i32.const 1))'
            ' (func (export "scim_alloc") (param i32) (result i32) (i32.const 65536))')
    ret = "(i64.or (i64.shl (i64.const {}) (i64.const 32)) (i64.const {}))"
    (tmp / "slow.wat").write_text(f"""(module {head} {accept}
  (func (export "scim_handle") (param i32 i32) (result i64) (local $k i32)
    (local.set $k (i32.const {SLOW_SPINS}))
    (loop $spin (local.set $k (i32.sub (local.get $k) (i32.const 1))) (br_if $spin (local.get $k)))
    {ret.format(1024, 21)}))\n""")
    reject = '{"decision":"reject","status":422,"scimType":"invalidValue","detail":"userName may not start with bad"}'
    needle = '"userName":"bad'
    wat_str = lambda s: s.replace("\\", "\\\\").replace('"', '\\"')
    (tmp / "no-bad.wat").write_text(f"""(module {head} {accept}
  (data (i32.const 16) "{wat_str(needle)}")
  (data (i32.const 2048) "{wat_str(reject)}")
  (func (export "scim_handle") (param $p i32) (param $n i32) (result i64) (local $i i32) (local $j i32)
    (local.set $i (local.get $p))
    (block $done (loop $outer
      (br_if $done (i32.gt_s (i32.add (local.get $i) (i32.const {len(needle)}))
                             (i32.add (local.get $p) (local.get $n))))
      (local.set $j (i32.const 0))
      (block $miss (loop $inner
        (br_if $miss (i32.ne (i32.load8_u (i32.add (local.get $i) (local.get $j)))
                             (i32.load8_u (i32.add (i32.const 16) (local.get $j)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (if (i32.eq (local.get $j) (i32.const {len(needle)})) (then (return {ret.format(2048, len(reject))})))
        (br $inner)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $outer)))
    {ret.format(1024, 21)}))\n""")
    return f"""[[plugins]]
name = "slow"
file = "{tmp / 'slow.wat'}"
tenants = ["hostile"]

[[plugins]]
name = "no-bad"
file = "{tmp / 'no-bad.wat'}"
resource_types = ["User"]
tenants = ["victim"]
on_failure = "open"
"""


def plugin_overload(ctx):
    v = ctx.conn(timeout=VICTIM_TIMEOUT)
    user = lambda name: {"schemas": [USER], "userName": name}
    unloaded = v.req("POST", "/scim/v2/Users?domain=victim", ctx.server.victim, user("bad-unloaded"))[0]
    ctx.notes["bad_create_unloaded"] = unloaded  # 422 when the plugin works at all
    tag = uuid.uuid4().hex[:6]

    def during(ctx, deadline):
        sent = stored = 0
        while time.monotonic() < deadline and sent < 2000 and ctx.server.alive():
            sent += 1
            stored += v.req("POST", "/scim/v2/Users?domain=victim", ctx.server.victim,
                            user(f"bad-{tag}-{sent}"))[0] == 201
        ctx.notes.update(bad_creates=sent, wrongly_stored=stored)

    return Attack(lambda c, n: c.req("POST", "/scim/v2/Users", ctx.server.hostile, user(f"h-{tag}-{n}"))[0],
                  workers=160, during=during)


def huge_error_path(ctx):
    rid = ctx.users(["target"])[0]
    body = dumps({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "x" * 900_000, "value": "v"}]})
    return Attack(lambda c, n: c.req("PATCH", f"/scim/v2/Users/{rid}", ctx.server.hostile, body)[0], count=50)


def member_patch(ctx, n_ids, count):
    gids = [ctx.group(f"g-{i}") for i in range(8)]
    bodies = [dumps({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [
        {"value": str(uuid.uuid4())} for _ in range(n_ids)]}]}) for _ in range(8)]
    ctx.notes["body_kib"] = len(bodies[0]) // 1024
    return Attack(lambda c, n: c.req("PATCH", f"/scim/v2/Groups/{gids[n % 8]}", ctx.server.hostile,
                                     bodies[n % 8])[0], count=count)


def huge_attributes(ctx):
    ctx.users([f"u-{i}" for i in range(324)])
    body = dumps({"schemas": [SEARCH], "attributes": ["emails.value"] * 60_000})
    ctx.notes["body_kib"] = len(body) // 1024
    return Attack(lambda c, n: c.req("POST", "/scim/v2/Users/.search", ctx.server.hostile, body)[0])


def patch_many_elements(ctx):
    """A user with 10,000 emails, or as many as the server accepts (the limit its 400 names,
    else halving)."""
    emails, rid = 10_000, None
    while rid is None and emails >= 100:
        st, body = ctx.conn().req("POST", "/scim/v2/Users", ctx.server.hostile, {
            "schemas": [USER], "userName": f"many-{emails}",
            "emails": [{"value": f"x{i}@example.com", "type": "work"} for i in range(emails)]})
        if st == 201:
            rid = json.loads(body)["id"]
            break
        ctx.notes.setdefault("refused", f"{emails} emails: {st}")
        limit = re.search(r"the limit is (\d+)", body.decode("utf8", "replace"))
        emails = int(limit.group(1)) if limit and int(limit.group(1)) < emails else emails // 2
    if rid is None:
        raise RuntimeError("setup: no user with 100 or more emails was accepted")
    ctx.notes["emails"] = emails
    rnd = random.Random(1)
    bodies = [dumps({"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": f'emails[value eq "x{rnd.randrange(emails)}@example.com"].type',
         "value": rnd.choice(["home", "work", "other"])} for _ in range(200)]}) for _ in range(8)]
    return Attack(lambda c, n: c.req("PATCH", f"/scim/v2/Users/{rid}", ctx.server.hostile, bodies[n % 8])[0])


def idle_connections(ctx):
    held, lock = [], threading.Lock()
    # /healthz answers `connection: close` on today's server, so each connection makes one
    # authenticated keep-alive request instead, and then stays open, idle.
    request = (f"GET /scim/v2/ServiceProviderConfig HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Bearer {ctx.server.hostile}\r\n\r\n").encode()

    def hit(c, n):
        try:
            s = socket.create_connection(("127.0.0.1", ctx.server.port), timeout=2)
        except OSError as e:
            return "timeout" if isinstance(e, socket.timeout) else "conn-error"
        with lock:
            held.append(s)
        try:
            s.sendall(request)
            got = b""
            while b"\r\n\r\n" not in got:  # the head is enough; the body is small
                chunk = s.recv(4096)
                if not chunk:
                    return "closed"
                got += chunk
            return int(got.split(b" ", 2)[1])
        except socket.timeout:
            return "timeout"
        except OSError:
            return "conn-error"

    def during(ctx, deadline):
        while time.monotonic() < deadline and ctx.server.alive():
            time.sleep(0.05)
        ctx.notes["held_connections"] = len(held)

    def cleanup(ctx):  # how many of the held connections the server had closed by now
        closed = 0
        for s in held:
            try:
                s.setblocking(False)
                closed += s.recv(1, socket.MSG_PEEK) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
            s.close()
        ctx.notes["closed_by_server"] = closed

    ctx.notes["victim"] = "new connection per request"
    return Attack(hit, count=1000, during=during, cleanup=cleanup, victim_fresh=True)


def and_filter(most=400):
    """Up to `most` terms joined by `and`, as many as fit in the 4096-byte filter limit."""
    terms, out = ['userName eq "a"', "displayName pr"] + ["title pr", "id pr"] * most, []
    for t in terms:
        if len(out) == most or len(" and ".join(out + [t]).encode()) > 4096:
            break
        out.append(t)
    return " and ".join(out)


def filter_setup(ctx):
    """5 users and the longest `and` filter; when the server refuses that many terms
    (400 naming its limit), the most terms it accepts, noted as such."""
    ctx.users([f"f-{i}" for i in range(5)], extra={"displayName": "d", "title": "t"})
    filt = and_filter()
    st, body = ctx.conn().req("GET", "/scim/v2/Users?filter=" + urllib.parse.quote(filt), ctx.server.hostile)
    limit = re.search(r"terms.*the limit is (\d+)", body.decode("utf8", "replace")) if st == 400 else None
    if limit:
        ctx.notes["refused"] = f"{filt.count(' and ') + 1} terms: {st}"
        filt = and_filter(int(limit.group(1)))
    ctx.notes.update(terms=filt.count(" and ") + 1, filter_bytes=len(filt))
    return filt


def filter_get(ctx):
    path = "/scim/v2/Users?filter=" + urllib.parse.quote(filter_setup(ctx))
    return Attack(lambda c, n: c.req("GET", path, ctx.server.hostile)[0])


def filter_search(ctx):
    body = dumps({"schemas": [SEARCH], "filter": filter_setup(ctx)})
    return Attack(lambda c, n: c.req("POST", "/scim/v2/Users/.search", ctx.server.hostile, body)[0])


def revocation(ctx):
    attack = filter_get(ctx)

    def during(ctx, deadline):
        time.sleep(min(1.0, ctx.seconds / 4))
        s = ctx.server
        token = s.token("victim", "revoke-me")
        payload = token.split(".")[1]
        jti = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]
        c, path = ctx.conn(timeout=VICTIM_TIMEOUT), "/scim/v2/Users?count=1&domain=victim"
        ctx.notes["before_revoke"] = c.req("GET", path, token)[0]
        s.run("token", "revoke", jti)
        t0, polls, status = time.monotonic(), 0, None
        while time.monotonic() - t0 < 15 and s.alive():
            polls += 1
            status = c.req("GET", path, token)[0]
            if status == 401:
                break
            time.sleep(0.02)
        ctx.notes.update(revoke_ms=round((time.monotonic() - t0) * 1000) if status == 401 else None,
                         revoke_polls=polls)

    attack.during = during
    return attack


def quadratic_emails(ctx):
    tag = uuid.uuid4().hex[:6]
    emails = [{"value": f"e{i}@example.com"} for i in range(16_000)]
    prefix = dumps({"schemas": [USER], "emails": emails})[:-1]
    ctx.notes["body_kib"] = len(prefix) // 1024
    return Attack(lambda c, n: c.req("POST", "/scim/v2/Users", ctx.server.hostile,
                                     prefix + b',"userName":"q-%s-%d"}' % (tag.encode(), n))[0], count=40)


SCENARIOS = [  # (name, setup, options); patch-deep-filter last: a server without bounds on PATCH filters aborts
    ("password-hashing/loop", password_loop, {}),
    ("password-hashing/burst", password_burst, {}),
    ("big-groups-list", partial(big_groups, query="count=40"), {}),
    ("big-groups-list/members", partial(big_groups, query="count=40&attributes=members"), {}),
    ("plugin-overload", plugin_overload, {"config": plugin_config}),
    ("huge-error-text/path", huge_error_path, {}),
    ("huge-error-text/members", partial(member_patch, n_ids=20_000, count=50), {}),
    ("huge-attributes", huge_attributes, {}),
    ("patch-many-elements", patch_many_elements, {}),
    ("idle-connections", idle_connections, {"nofile": 256}),
    ("filter-planning/get", filter_get, {}),
    ("filter-planning/search", filter_search, {}),
    ("revocation", revocation, {}),
    ("quadratic-multivalued/emails", quadratic_emails, {}),
    ("quadratic-multivalued/members", partial(member_patch, n_ids=20_000, count=None), {}),
    ("patch-deep-filter/users", deep_filter("Users"), {}),
    ("patch-deep-filter/groups", deep_filter("Groups"), {}),
]

COLUMNS = {"scenario", "setup_s", "rss_before_mib", "attack_s", "victim_p50_ms", "victim_p99_ms", "victim_max_ms",
           "victim_non2xx", "victim_requests", "hostile", "peak_rss_mib", "db_growth_mib", "alive", "verdict", "data"}


def fmt(v):
    return "-" if v is None else str(v)


def print_table(rows):
    head = f"{'scenario':<30} {'p50':>7} {'p99':>8} {'max':>8} {'v-non2xx':>11} {'RSS MiB':>8} {'db+MiB':>7} " \
           f"{'alive':>5} {'verdict':>7}  hostile statuses; notes"
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        hostile = " ".join(f"{k}:{v}" for k, v in r.get("hostile", {}).items())
        notes = " ".join(f"{k}={v}" for k, v in r.items() if k not in COLUMNS)  # what the scenario noted
        print(f"{r['scenario']:<30} {fmt(r.get('victim_p50_ms')):>7} {fmt(r.get('victim_p99_ms')):>8} "
              f"{fmt(r.get('victim_max_ms')):>8} {fmt(r.get('victim_non2xx')) + '/' + fmt(r.get('victim_requests')):>11} "
              f"{fmt(r.get('peak_rss_mib')):>8} {fmt(r.get('db_growth_mib')):>7} {'yes' if r['alive'] else 'NO':>5} "
              f"{r['verdict']:>7}  {hostile}; {notes}")
    print("latencies in ms (victim GET-by-id); OVER: p99 >= %g ms or RSS >= %g MiB" % (P99_LIMIT_MS, RSS_LIMIT_MIB))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bin", help="the scimgate binary")
    ap.add_argument("--only", action="append", help="a scenario or group name (repeatable)")
    ap.add_argument("--seconds", type=float, default=10.0, help="hostile load per scenario")
    ap.add_argument("--keep", action="store_true", help="keep each scenario's data folder")
    args = ap.parse_args()
    binary = str(Path(args.bin).resolve())
    chosen = [s for s in SCENARIOS if not args.only or any(o in (s[0], s[0].split("/")[0]) for o in args.only)]
    if not chosen:
        sys.exit(f"abuse: no scenario named {args.only}; known: {', '.join(s[0] for s in SCENARIOS)}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    sys.setswitchinterval(0.001)
    print(f"machine: {os.cpu_count()} cores; binary {binary}; {args.seconds:g} s per scenario", flush=True)
    rows = []
    for name, setup, opts in chosen:
        print(f"== {name}", flush=True)
        row = run_scenario(binary, name, setup, opts, args.seconds, args.keep)
        print("   " + json.dumps(row), flush=True)
        rows.append(row)
    print_table(rows)
    RESULTS.mkdir(exist_ok=True)
    digest = hashlib.sha256(Path(binary).read_bytes()).hexdigest()[:16]
    out = {"binary": binary, "binary_sha256": digest, "binary_mtime": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.stat(binary).st_mtime)), "seconds": args.seconds, "cores": os.cpu_count(),
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    (RESULTS / "abuse.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"written {RESULTS / 'abuse.json'}")
    sys.exit(1 if any(r["verdict"] == "DIED" for r in rows) else 0)


if __name__ == "__main__":
    main()
