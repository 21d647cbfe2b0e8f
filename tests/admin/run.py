#!/usr/bin/env python3
"""The admin web page in a real browser: headless Chromium driven over WebDriver
(chromedriver, through Selenium), against the real binary with real data.

Usage: run.py PATH_TO_SCIMGATE [--screenshots DIR]

It starts a server with a plugin (require-department) and a receiver that cannot be
reached (so that it is dead-lettered), provisions users and groups through SCIM (some
refused by the plugin), then in the browser: signs in with the link `scimgate admin
login-url` prints (and finds it refused the second time), checks that an action without
the CSRF token is refused, opens every view with its data (activity filtered and one row's
change, users and groups with a SCIM filter and one resource, receivers with a re-enable,
plugins and schemas, tokens and clients with a revoke that the SCIM API then refuses,
health), and signs out. A screenshot of each view goes to DIR (default
target/admin-screenshots; docs/admin.md shows the ones in docs/admin/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Scim:
    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None, token=None):
        req = urllib.request.Request(
            f"{self.base}/scim/v2{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {token or self.token}",
                "Content-Type": "application/scim+json",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                text = resp.read()
                return resp.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, json.loads(text) if text else None


def cli(binary: str, *args: str) -> str:
    out = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"admin test: scimgate {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)
    print(f"ok   {what}")


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--screenshots", default=str(ROOT / "target/admin-screenshots"))
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    shots = Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="scimgate-admin-"))
    data = work / "data"
    port, dead_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    plugin = ROOT / "plugins/dist/require-department.wasm"
    config = work / "config.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\ndata = "{data}"\n'
        f'[[plugins]]\nname = "require-department"\nfile = "{plugin}"\nresource_types = ["User"]\n'
        f'config = {{ allowed = ["Sales", "Engineering"] }}\n'
        f'[[events.receivers]]\nname = "hr-sync"\nurl = "http://127.0.0.1:{dead_port}/events"\n'
        f'tenants = ["*"]\ndead_after_secs = 1\nmax_backoff_secs = 1\ntimeout_ms = 500\n'
    )
    env = dict(os.environ, SCIMGATE_CONFIG=str(config), SCIMGATE_LOG="warn")
    server = subprocess.Popen([binary, "serve"], env=env)
    driver = None
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        os.environ["SCIMGATE_CONFIG"] = str(config)
        cli(binary, "tenant", "add", "acme")
        idp = Scim(base, cli(binary, "token", "--sub", "entra-provisioning", "--tenant", "default", "--ttl", "3600"))
        ids = {}
        for name, dept in [("ada@example.com", "Sales"), ("bob@example.com", "Engineering"),
                           ("cy@example.com", "Engineering"), ("dee@example.com", "Legal")]:
            status, body = idp.call("POST", "/Users", {"schemas": [USER, ENTERPRISE], "userName": name,
                                                        "name": {"givenName": name.split("@")[0].title()},
                                                        ENTERPRISE: {"department": dept}})
            if status == 201:
                ids[name] = body["id"]
        check(len(ids) == 3, "three users created, one refused by the plugin")
        status, group = idp.call("POST", "/Groups", {"schemas": [GROUP], "displayName": "Sales team",
                                                     "members": [{"value": ids["ada@example.com"]}]})
        check(status == 201, "a group created with a member")
        status, _ = idp.call("PATCH", f"/Users/{ids['bob@example.com']}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}]})
        check(status == 200, "a user deactivated with a PATCH")
        cli(binary, "client", "add", "okta-acme", "--tenant", "default")
        victim = cli(binary, "token", "--sub", "old-integration", "--ttl", "3600")
        check(idp.call("GET", "/Users?count=1", token=victim)[0] == 200, "the token to revoke works")
        tokens = cli(binary, "token", "list").splitlines()[1:]
        victim_jti = next(line.split()[0] for line in tokens if " old-integration " in f" {line} ")

        driver = browser()
        wait = WebDriverWait(driver, 15)
        link = cli(binary, "admin", "login-url", "--tenant", "default", "--tenant", "acme", "--sub", "admin:alice")
        check(link.startswith(f"{base}/admin/#t="), "login-url prints a link with its token in the fragment")

        # A page opened without a session asks to sign in.
        driver.get(f"{base}/admin/")
        wait.until(ec.visibility_of_element_located((By.ID, "signin")))
        driver.save_screenshot(str(shots / "signin.png"))
        check(True, "without a session the page asks to sign in")

        driver.get(link)
        wait.until(ec.visibility_of_element_located((By.ID, "nav")))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#activity table")))
        check("#t=" not in driver.current_url, "the link's token is gone from the address bar")
        cookies = {c["name"]: c for c in driver.get_cookies()}
        session = cookies.get("scimgate_admin")
        check(session is not None and session["httpOnly"] and session.get("sameSite") == "Strict",
              "the session cookie is HttpOnly and SameSite=Strict")
        check(driver.execute_script("return document.cookie").find("scimgate_admin") < 0,
              "the page's script cannot read the session cookie")

        # Headers: CSP without inline script, no framing.
        with urllib.request.urlopen(f"{base}/admin/", timeout=5) as resp:
            csp = resp.headers["Content-Security-Policy"]
            check("script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp,
                  "the page's Content-Security-Policy allows only its own script")
            check(resp.headers["X-Frame-Options"] == "DENY", "X-Frame-Options: DENY")

        # Activity: every write and refusal, the plugin's decision, one row's change.
        rows = driver.find_elements(By.CSS_SELECTOR, "#activity tbody tr")
        check(len(rows) >= 6, f"the activity shows the writes and refusals ({len(rows)} rows)")
        text = driver.find_element(By.ID, "activity").text
        check("422" in text and "require-department: reject" in text and "Legal" in text,
              "a refusal shows its status, the plugin's decision and the SCIM error detail")
        driver.save_screenshot(str(shots / "activity.png"))
        driver.find_element(By.CSS_SELECTOR, "#filter-status option[value='refused']").click()
        driver.find_element(By.ID, "filter-apply").click()
        wait.until(lambda d: all("422" in r.text for r in d.find_elements(By.CSS_SELECTOR, "#activity tbody tr")))
        check(len(driver.find_elements(By.CSS_SELECTOR, "#activity tbody tr")) == 1, "filtering by status leaves the one refusal")
        driver.find_element(By.CSS_SELECTOR, "#filter-status option[value='']").click()
        driver.find_element(By.ID, "filter-apply").click()
        wait.until(lambda d: any("PATCH" in r.text for r in d.find_elements(By.CSS_SELECTOR, "#activity tbody tr")))
        patch_row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#activity tbody tr") if "PATCH" in r.text)
        patch_row.click()
        change = wait.until(ec.visibility_of_element_located((By.ID, "row-change")))
        check('"active"' in change.text and '"replace"' in change.text, "a PATCH row opens to the operations it applied")
        driver.save_screenshot(str(shots / "activity-row.png"))

        # Users and groups: a SCIM filter, one user with its groups and history.
        driver.get(f"{base}/admin/#/users")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#resources table")))
        box = driver.find_element(By.ID, "resource-filter")
        box.send_keys('userName sw "a"')
        driver.find_element(By.ID, "resource-search").click()
        wait.until(lambda d: d.find_element(By.ID, "resource-total").text.startswith("1 "))
        driver.find_element(By.CSS_SELECTOR, "#resources tbody tr").click()
        panel = wait.until(ec.visibility_of_element_located((By.ID, "resource-panel")))
        check("Sales team" in panel.text and "POST" in panel.text, "a user opens with its groups and its history")
        driver.save_screenshot(str(shots / "users.png"))
        driver.get(f"{base}/admin/#/groups")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#resources tbody tr"))).click()
        panel = wait.until(ec.visibility_of_element_located((By.ID, "resource-panel")))
        check("ada@example.com" in panel.text or ids["ada@example.com"] in panel.text, "a group opens with its members")
        driver.save_screenshot(str(shots / "groups.png"))

        # Receivers: the unreachable one is dead-lettered; re-enabled from the page.
        deadline = time.time() + 20
        while True:
            driver.get(f"{base}/admin/#/receivers")
            driver.refresh()
            wait.until(ec.presence_of_element_located((By.ID, "receivers")))
            time.sleep(0.3)
            if "dead" in driver.find_element(By.ID, "receivers").text or time.time() > deadline:
                break
            time.sleep(1)
        text = driver.find_element(By.ID, "receivers").text
        check("hr-sync" in text and "dead" in text, "the unreachable receiver shows dead-lettered with its lag and error")
        driver.save_screenshot(str(shots / "receivers.png"))
        driver.find_element(By.XPATH, "//button[text()='Re-enable']").click()
        wait.until(lambda d: "re-enabled in 1 tenant" in d.find_element(By.ID, "receiver-note").text)
        check(True, "a dead-lettered receiver is re-enabled from the page")

        # Plugins and schemas.
        driver.get(f"{base}/admin/#/plugins")
        table = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#plugins table")))
        text = driver.find_element(By.ID, "plugins").text
        check("require-department" in text and ENTERPRISE in text, "the plugin with its calls, and the schemas")
        driver.save_screenshot(str(shots / "plugins.png"))

        # CSRF: an action without the session's token, from the page's own origin, is refused.
        status = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"fetch('/admin/api/tokens/{victim_jti}/revoke', {{method: 'POST', credentials: 'same-origin',"
            " headers: {'Content-Type': 'application/json'}, body: '{}'}).then(r => done(r.status));")
        check(status == 403, f"a revoke without the CSRF token is refused ({status})")
        status = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"fetch('/admin/api/tokens/{victim_jti}/revoke', {{method: 'POST', credentials: 'same-origin',"
            " headers: {'Content-Type': 'application/json', 'X-CSRF-Token': 'forged'}, body: '{}'}).then(r => done(r.status));")
        check(status == 403, f"a revoke with a forged CSRF token is refused ({status})")
        check(idp.call("GET", "/Users?count=1", token=victim)[0] == 200, "the token still works after the refused revokes")

        # Tokens and clients: revoke from the page; the SCIM API refuses the token.
        driver.get(f"{base}/admin/#/access")
        button = wait.until(ec.element_to_be_clickable((By.ID, f"revoke-{victim_jti}")))
        check("okta-acme" in driver.find_element(By.ID, "access").text, "the OAuth client is listed")
        driver.save_screenshot(str(shots / "access.png"))
        button.click()
        wait.until(lambda d: "revoked" in d.find_element(By.ID, "access-note").text)
        deadline = time.time() + 5
        while idp.call("GET", "/Users?count=1", token=victim)[0] != 401:
            if time.time() > deadline:
                raise AssertionError("the revoked token still works")
            time.sleep(0.1)
        check(True, "a token revoked on the page is refused by the SCIM API")
        driver.find_element(By.ID, "rotate-client-okta-acme").click()
        secret = wait.until(ec.visibility_of_element_located((By.ID, "secret"))).text
        check(len(secret) > 20, "a client's new secret is shown once")

        # Health.
        driver.get(f"{base}/admin/#/health")
        size = wait.until(ec.visibility_of_element_located((By.ID, "health-size")))
        check("MiB" in size.text, "the health view shows the database size and rates")
        driver.save_screenshot(str(shots / "health.png"))

        # Everything above is in the trail as the operator.
        audit = subprocess.run([binary, "audit", "tail", "--json", "-n", "200"], capture_output=True, text=True, check=True)
        mine = [json.loads(l) for l in audit.stdout.splitlines() if '"admin:alice"' in l]
        if not mine:
            print(audit.stdout[-3000:], audit.stderr)
        actions = {r.get("resourceType") for r in mine}
        check({"sign in", "revoke token", "rotate client secret", "enable receiver", "view User"} <= actions,
              f"the operator's actions are audited as them ({sorted(a for a in actions if a)})")

        # Sign out: the session ends on the server, the page asks to sign in again.
        driver.find_element(By.ID, "sign-out").click()
        wait.until(ec.visibility_of_element_located((By.ID, "signin")))
        status = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/admin/api/me', {credentials: 'same-origin'}).then(r => done(r.status));")
        check(status == 401, "after sign-out the session is gone")
        # The link worked once.
        driver.get(link)
        wait.until(ec.visibility_of_element_located((By.ID, "error")))
        check("used" in driver.find_element(By.ID, "error").text, "the sign-in link is refused the second time")
        print(f"admin test: passed; screenshots in {shots}")
        return 0
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
