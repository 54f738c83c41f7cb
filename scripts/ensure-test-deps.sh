#!/usr/bin/env bash
# Installs what `make test` needs, idempotently: Debian chromium-headless-shell (the browser
# tests' Chromium, its old headless mode) and chromium (the full browser, for the few tests of
# what the shell does otherwise), redis-server (the cluster tests), coturn (TURN relay for the
# video tests), iproute2 (`ss`), dovecot-imapd (the IMAP server the inbound mail tests run
# privately), clamav-daemon (clamd, the virus scanner the attachment tests run privately), a
# Python venv with secantusdb (a MongoDB-wire server) and aiosmtpd (an SMTP sink), and the
# browser tests' npm packages.
# Fails loudly when something cannot be installed: tests never skip for a missing server.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "ensure-test-deps: need root to run: $*" >&2; exit 1; fi
}

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromium-headless-shell >/dev/null || missing+=(chromium-headless-shell)
command -v npm >/dev/null || missing+=(npm)
command -v curl >/dev/null || missing+=(curl)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v turnserver >/dev/null || missing+=(coturn)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
# The HTTPS SMS gateway test's throw-away CA and certificate (tests/hub/rooms.rs).
command -v openssl >/dev/null || missing+=(openssl)
# `ss` reads the listening socket's backlog back (tests/hub/listen_backlog.rs).
command -v ss >/dev/null || missing+=(iproute2)
# The IMAP server the inbound mail tests start as their own process (tests/hub/dovecot.rs);
# Debian's package, whose system service the tests never use.
command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
# The virus scanner the attachment tests start as their own process with one test
# signature (tests/hub/clamd.rs); no database is downloaded, no service started.
command -v clamd >/dev/null || [ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)
if [ ${#missing[@]} -gt 0 ]; then
  echo "ensure-test-deps: installing ${missing[*]} from Debian"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/secantusd-py ]; then
  echo "ensure-test-deps: creating .venv with secantusdb"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check secantusdb
fi

# websocket conformance: kosoku runs the Autobahn cases (tests/hub/closing.rs, scripts/autobahn.py).
# Pinned: its verdicts are what the test judges.
if ! .venv/bin/python -c 'import kosoku' 2>/dev/null; then
  echo "ensure-test-deps: installing kosoku into .venv"
  .venv/bin/pip install -q --disable-pip-version-check kosoku==0.1.0
fi

# The SMTP sink the mail tests start (`python -m aiosmtpd`, writing a Maildir they read).
if ! .venv/bin/python -c 'import aiosmtpd' 2>/dev/null; then
  echo "ensure-test-deps: installing aiosmtpd into .venv"
  .venv/bin/pip install -q --disable-pip-version-check aiosmtpd==1.4.6
fi

if [ -f tests/browser/package-lock.json ] && { [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/axe-core ]; }; then
  echo "ensure-test-deps: installing the browser tests' npm packages"
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
echo "ensure-test-deps: ready"
