#!/usr/bin/env python3
"""Runs two public SCIM conformance suites (scim2-tester, scim-sanity) against the real
scimgate binary on a fresh data folder, and compares their verdicts with
expected-failures.json: any other failure fails the run, and so does a listed failure that
now passes (so the list is kept honest).

Usage: run.py PATH_TO_SCIMGATE_BINARY
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"scimgate exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    sys.exit("scimgate did not become ready")


def run_scim2_tester(scim_url: str, token: str) -> dict:
    from httpx2 import Client
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import Status, check_server

    client = SyncSCIMClient(Client(base_url=scim_url, headers={"Authorization": f"Bearer {token}"}))
    verdicts = {}
    for result in check_server(client):
        name = result.title
        label = f"{name} [{result.resource_type}]" if getattr(result, "resource_type", None) else name
        failed = result.status in (Status.ERROR, Status.CRITICAL)
        print(f"  scim2-tester {result.status.name:8} {label}: {(result.reason or '')[:700]}")
        # A check counts as failed when any of its runs for that resource type failed.
        verdicts[label] = verdicts.get(label, False) or failed
    return verdicts


def run_scim_sanity(scim_url: str, token: str) -> dict:
    out = subprocess.run(
        ["scim-sanity", "probe", scim_url, "--token", token, "--i-accept-side-effects", "--json-output"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError:
        sys.exit(f"scim-sanity gave no JSON report:\n{out.stdout}\n{out.stderr}")
    verdicts = {}
    for r in report["results"]:
        print(f"  scim-sanity  {r['status'].upper():8} {r['name']}: {r.get('message', '')[:160]}")
        if r["status"] == "skip":
            continue
        verdicts[r["name"]] = verdicts.get(r["name"], False) or r["status"] in ("fail", "error")
    return verdicts


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    expected = json.loads((HERE / "expected-failures.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        # scim2-tester's model of ServiceProviderConfig predates RFC 9967 and refuses its
        # `securityEvents` (then skips the checks that need the configuration): the
        # suites run with it off (docs/conformance.md).
        env = dict(os.environ, SCIMGATE_LOG="warn", SCIMGATE_EVENTS__ADVERTISE="false")
        proc = subprocess.Popen([binary, "serve", "--data", str(data), "--listen", f"127.0.0.1:{port}"], env=env)
        try:
            wait_ready(base, proc)
            token = subprocess.run(
                [binary, "token", "--data", str(data), "--sub", "conformance"], check=True, capture_output=True, text=True
            ).stdout.strip()
            suites = {
                "scim2-tester": run_scim2_tester(f"{base}/scim/v2", token),
                "scim-sanity": run_scim_sanity(f"{base}/scim/v2", token),
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    passed, failed, problems = 0, 0, []
    for suite, verdicts in suites.items():
        known = expected.get(suite, {})
        for name, did_fail in sorted(verdicts.items()):
            if did_fail and name in known:
                print(f"  expected failure: {suite} {name} ({known[name]})")
            elif did_fail:
                failed += 1
                problems.append(f"{suite}: '{name}' failed")
            elif name in known:
                failed += 1
                problems.append(f"{suite}: '{name}' passes now; remove it from expected-failures.json")
            else:
                passed += 1
        for name in known:
            if name not in verdicts:
                failed += 1
                problems.append(f"{suite}: expected failure '{name}' did not run at all")
    for p in problems:
        print(f"FAIL {p}")
    print(f"conformance: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
