#!/usr/bin/env bash
# Installs the real servers the test suite starts (distribution packages), only when missing.
# Needs root for apt-get; otherwise it prints exactly what to install and fails.
set -euo pipefail

# command -> Debian package that ships it
declare -A needed=(
  [promtool]=prometheus
  [prometheus]=prometheus
  [amtool]=prometheus-alertmanager
  [prometheus-alertmanager]=prometheus-alertmanager
  [redis-server]=redis-server
  [pgbouncer]=pgbouncer
  [openssl]=openssl
  [victoria-metrics]=victoria-metrics  # also ships vmagent and vmalert (tests/e2e)
  [vmalert]=victoria-metrics
)
missing=()
for cmd in "${!needed[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needed[$cmd]}")
done
# PostgreSQL server binaries live outside PATH on Debian.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "missing test dependencies; install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing test dependencies: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
