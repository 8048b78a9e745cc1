#!/usr/bin/env bash
# Install everything Berg needs on a fresh Debian machine, skipping what is there:
#   Debian packages: Java 17+ and Maven (Kafka's jars), Prometheus + promtool,
#   Alertmanager + amtool, Redis and PostgreSQL (the feature store's cluster profile,
#   which the tests and benchmarks run against throwaway servers); then uv and the
#   locked Python environment.
# Kafka's jars themselves are fetched from Maven Central by `berg up` (and the tests).
set -euo pipefail

packages=()
command -v java >/dev/null 2>&1 || packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || packages+=(maven)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || packages+=(prometheus)
{ command -v prometheus-alertmanager && command -v amtool; } >/dev/null 2>&1 || packages+=(prometheus-alertmanager)
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
# Debian keeps initdb, pg_ctl and postgres off PATH, under /usr/lib/postgresql/<version>/bin.
pg_bin_present() {
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/postgres" ] && return 0
  done
  return 1
}
pg_bin_present || packages+=(postgresql)

if ((${#packages[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to apt-get install ${packages[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "bootstrap: apt-get install ${packages[*]}"
  # The Debian packages would start system-wide Prometheus, Alertmanager, Redis and
  # PostgreSQL daemons on the default ports; Berg runs its own, so forbid service
  # starts during the install.
  policy=/usr/sbin/policy-rc.d
  created_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    created_policy=1
  fi
  trap '[ -n "$created_policy" ] && $sudo rm -f "$policy"' EXIT
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
  echo "bootstrap: pip install uv"
  python3 -m pip install --quiet uv
fi
uv_cmd=(uv)
command -v uv >/dev/null 2>&1 || uv_cmd=(python3 -m uv)
"${uv_cmd[@]}" sync --locked --quiet
