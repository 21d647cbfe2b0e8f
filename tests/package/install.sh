#!/usr/bin/env bash
# Installs the Debian package built by scripts/package on this machine and uses it as an
# operator would: the unit started by systemd where systemd runs (else the unit's command
# as the package's user), a token minted as that user, one user provisioned over SCIM,
# `scimgate doctor`, then the package purged (the data folder is kept, as the package
# promises; this test removes it and the user afterwards). Needs root.
#
#   tests/package/install.sh target/debian/scimgate_VERSION_ARCH.deb
set -euo pipefail
deb=$(realpath "$1")
[[ $(id -u) == 0 ]] || { echo "package test: needs root (dpkg -i)" >&2; exit 1; }
fail() { echo "package test: $*" >&2; exit 1; }
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [[ -d /run/systemd/system ]]; then systemctl stop scimgate 2>/dev/null || true; fi
  dpkg --purge scimgate >/dev/null 2>&1 || true
  rm -rf /var/lib/scimgate /etc/scimgate
  if getent passwd scimgate >/dev/null; then userdel scimgate 2>/dev/null || true; fi
  if getent group scimgate >/dev/null; then groupdel scimgate 2>/dev/null || true; fi
}
trap cleanup EXIT
cleanup

echo "package test: installing $deb"
apt-get install -y -q "$deb" >/dev/null || DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"
[[ $(command -v scimgate) == /usr/bin/scimgate ]] || [[ -x /usr/bin/scimgate ]] || fail "no /usr/bin/scimgate"
/usr/bin/scimgate --version
mode() { stat -c '%a %U:%G' "$1"; }
[[ $(mode /var/lib/scimgate) == "700 scimgate:scimgate" ]] || fail "/var/lib/scimgate is $(mode /var/lib/scimgate)"
[[ $(mode /etc/scimgate/config.toml) == "640 root:scimgate" ]] || fail "config.toml is $(mode /etc/scimgate/config.toml)"
grep -q '^# database = ' /etc/scimgate/config.toml || fail "the configuration is not the commented one"
for page in scimgate scimgate-serve scimgate-backup scimgate-import; do
  [[ -s /usr/share/man/man1/$page.1.gz ]] || fail "no man page $page.1"
done
zcat /usr/share/man/man1/scimgate.1.gz | grep -q '^\.TH' || fail "scimgate.1 is not a man page"
bash -c 'source /usr/share/bash-completion/completions/scimgate && complete -p scimgate' >/dev/null ||
  fail "the bash completion does not load"
[[ -s /usr/share/zsh/vendor-completions/_scimgate && -s /usr/share/fish/vendor_completions.d/scimgate.fish ]] ||
  fail "zsh or fish completions missing"
dpkg-query -W -f '${Conffiles}\n' scimgate | grep -q /etc/scimgate/config.toml || fail "config.toml is not a conffile"

if command -v systemd-analyze >/dev/null; then
  # The unit as systemd reads it: no warning, and its hardening's exposure score.
  problems=$(systemd-analyze verify /lib/systemd/system/scimgate.service 2>&1) || fail "systemd-analyze verify: $problems"
  [[ -z $problems ]] || fail "systemd-analyze verify: $problems"
  systemd-analyze security --offline=true /lib/systemd/system/scimgate.service 2>/dev/null | tail -n1 || true
fi

# The admin commands as the service's user find /etc/scimgate/config.toml by themselves.
as_scimgate() { runuser -u scimgate -- "$@"; }
if [[ -d /run/systemd/system ]]; then
  echo "package test: systemd runs here: the unit"
  port=8080
  systemctl is-enabled scimgate >/dev/null || fail "the unit is not enabled"
  systemctl restart scimgate
else
  echo "package test: no systemd here: the unit's command as the package's user"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  runuser -u scimgate -- env SCIMGATE_CONFIG=/etc/scimgate/config.toml SCIMGATE_LISTEN="127.0.0.1:$port" \
    /usr/bin/scimgate serve 2>/tmp/scimgate-package-test.log &
  server_pid=$!
fi
for _ in $(seq 200); do
  scimgate healthcheck --addr "127.0.0.1:$port" 2>/dev/null && break
  sleep 0.1
done
scimgate healthcheck --addr "127.0.0.1:$port" || { cat /tmp/scimgate-package-test.log >&2 || true; fail "the server did not start"; }
[[ -f /var/lib/scimgate/scimgate.db && $(mode /var/lib/scimgate/scimgate.db) == "600 scimgate:scimgate" ]] ||
  fail "the database is not the service user's private file"

token=$(cd / && as_scimgate scimgate token --sub entra --ttl 600)
if command -v sudo >/dev/null; then
  token=$(cd / && sudo -u scimgate scimgate token --sub entra --ttl 600)
fi
status=$(curl -sS -o /tmp/scimgate-package-user.json -w '%{http_code}' -X POST "http://127.0.0.1:$port/scim/v2/Users" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/scim+json' \
  -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"packaged@example.com"}')
[[ $status == 201 ]] || { cat /tmp/scimgate-package-user.json >&2; fail "POST /Users answered $status"; }
curl -sS --fail-with-body -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/scim/v2/Users?filter=userName%20eq%20%22packaged@example.com%22" | grep -q '"totalResults":1' ||
  fail "the user is not found"
(cd / && as_scimgate scimgate doctor) >/tmp/scimgate-package-doctor.txt || { cat /tmp/scimgate-package-doctor.txt >&2; fail "doctor found problems"; }
echo "package test: installed, started, one user provisioned, doctor passed"

if [[ -n $server_pid ]]; then kill "$server_pid"; wait "$server_pid" || true; server_pid=; fi
dpkg --purge scimgate >/dev/null
[[ ! -e /usr/bin/scimgate ]] || fail "/usr/bin/scimgate is left after purge"
[[ -f /var/lib/scimgate/scimgate.db ]] || fail "purge removed the data folder"
echo "package test: purged; the data folder was kept"
