#!/usr/bin/env bash
# Build the cluster tier's binaries from the Go module proxy, once per machine, keyed by version:
#   a Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl),
#   etcd, kwok (a fake kubelet: nodes and pods without containers) and KServe's controller manager; and the
#   CRD files of the operators the chart targets (KServe's, prometheus-operator's, Knative Serving's).
# No prebuilt download exists here, so each is built by `go build` into
#   ${XDG_CACHE_HOME:-~/.cache}/berg/tools/<component>-<version>/
# outside the clone (another clone reuses it), and linked into .berg/tools/cluster/.
# Only the binaries (and the data files they need) are kept: the Go build cache of a build is private
# to it and removed once every binary is in place.
#
# Usage: scripts/cluster-tools.sh          build what is missing (about 20 minutes on 2 cores, once)
#        scripts/cluster-tools.sh --check  exit 1 if anything would be built
set -euo pipefail

kubernetes_version=v1.37.2
# The etcd release Kubernetes $kubernetes_version is built and tested against (its go.mod's etcd client).
etcd_version=v3.7.0
kwok_version=v0.8.0
# The KServe release the chart targets (its CRDs are vendored under tests/delivery/crd_schemas).
kserve_version=v0.20.0
# The prometheus-operator release whose CRDs the chart targets (only its CRD files are fetched).
prometheus_operator_version=v0.85.0
# The Knative Serving release KServe $kserve_version is built against (its go.mod): only its CRDs are fetched,
# so KServe's controller reconciles Knative-mode InferenceServices into Knative Services.
knative_serving_version=v0.48.1

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/berg/tools"
link_dir="$repo/.berg/tools/cluster"
go_bin=$(command -v go || echo /usr/local/go/bin/go)

kubernetes_dir="$cache/kubernetes-$kubernetes_version"
etcd_dir="$cache/etcd-$etcd_version"
kwok_dir="$cache/kwok-$kwok_version"
kserve_dir="$cache/kserve-$kserve_version"
prometheus_operator_dir="$cache/prometheus-operator-$prometheus_operator_version"
knative_serving_dir="$cache/knative-serving-$knative_serving_version"

# Each component's directory is complete when its stamp exists (written last, after every file).
missing=()
[ -f "$kubernetes_dir/.complete" ] || missing+=(kubernetes)
[ -f "$etcd_dir/.complete" ] || missing+=(etcd)
[ -f "$kwok_dir/.complete" ] || missing+=(kwok)
[ -f "$kserve_dir/.complete" ] || missing+=(kserve)
[ -f "$prometheus_operator_dir/.complete" ] || missing+=(prometheus_operator)
[ -f "$knative_serving_dir/.complete" ] || missing+=(knative_serving)

if [ "${1:-}" = --check ]; then
  [ ${#missing[@]} -eq 0 ] || { echo "cluster tools to build: ${missing[*]}"; exit 1; }
  exit 0
fi

if ((${#missing[@]})); then
  [ -x "$go_bin" ] || { echo "cluster-tools: Go is needed (expected at /usr/local/go/bin/go)" >&2; exit 1; }
  # Minutes each build took on 2 busy cores with an empty Go build cache.
  declare -A minutes=([kubernetes]=11 [etcd]=1 [kwok]=3 [kserve]=5 [prometheus_operator]=0 [knative_serving]=0)
  estimate=0
  build_knative_serving() {
  progress "Knative Serving $knative_serving_version CRDs and autoscaler defaults (files only, nothing to build)"
  local kserve_mod src out
  kserve_mod=$("$go_bin" mod download -json "github.com/kserve/kserve@$kserve_version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
  grep -q "knative.dev/serving $knative_serving_version\b" "$kserve_mod" ||
    { echo "cluster-tools: KServe $kserve_version no longer builds against Knative Serving $knative_serving_version" >&2; exit 1; }
  src=$("$go_bin" mod download -json "knative.dev/serving@$knative_serving_version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  out="$work/knative-serving-out"
  mkdir -p "$out/knative-serving-crd"
  cp "$src"/config/core/300-resources/*.yaml "$out/knative-serving-crd/"
  # KServe reads Knative's autoscaler defaults (config-autoscaler) to fill in a Knative Service's scaling.
  mkdir -p "$out/knative-serving-config"
  cp "$src/config/core/configmaps/autoscaler.yaml" "$out/knative-serving-config/"
  chmod -R u+w "$out"
  publish "$out" "$knative_serving_dir"
}

for component in "${missing[@]}"; do estimate=$((estimate + minutes[$component])); done
  echo "cluster-tools: building ${missing[*]} from the Go module proxy into $cache"
  if ((estimate)); then
    echo "cluster-tools: about $estimate minutes of 2 cores, once per machine; later runs reuse the binaries"
  fi
  work=$(mktemp -d "${TMPDIR:-/tmp}/berg-cluster-tools.XXXXXX")
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  export GOCACHE="$work/go-build" GOFLAGS="-mod=mod" GOTOOLCHAIN=local
fi

started=$SECONDS
step=0
progress() {
  step=$((step + 1))
  printf 'cluster-tools: [%d/%d] %s (%d s so far)\n' "$step" "${#missing[@]}" "$1" $((SECONDS - started))
}

# A module of our own that requires $1 at $2, in $work/$3; the rest of its go.mod comes from stdin.
new_module() {
  local dir="$work/$3"
  mkdir -p "$dir"
  {
    printf 'module berg.local/cluster-tools/%s\n\ngo 1.26.0\n\nrequire %s %s\n' "$3" "$1" "$2"
    cat
  } >"$dir/go.mod"
  echo "$dir"
}

# Move a finished build into the cache in one step, so an interrupted build never looks complete.
publish() {
  local built=$1 target=$2
  touch "$built/.complete"
  rm -rf "$target"
  mkdir -p "$(dirname "$target")"
  mv "$built" "$target"
}

build_kubernetes() {
  progress "Kubernetes $kubernetes_version: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl"
  local gomod dir minor ldflags out
  gomod=$("$go_bin" mod download -json "k8s.io/kubernetes@$kubernetes_version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
  # Kubernetes' go.mod points each k8s.io/<module> at its own ./staging copy; outside its repository
  # those are the published k8s.io/<module> v0.<minor>.<patch> of the same release.
  minor="v0.${kubernetes_version#v1.}"
  dir=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#replace \1 => \1 '"$minor"'#p' "$gomod" |
    { echo; printf 'godebug default=go1.26\n\n'; cat; } | new_module k8s.io/kubernetes "$kubernetes_version" kubernetes)
  # Version stamps, as Kubernetes' own build (hack/lib/version.sh) sets them.
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$kubernetes_version -X $pkg.gitMajor=1"
    ldflags+=" -X $pkg.gitMinor=$(echo "$kubernetes_version" | cut -d. -f2) -X $pkg.gitTreeState=clean"
  done
  out="$work/kubernetes-out"
  mkdir -p "$out"
  (cd "$dir" && "$go_bin" build -trimpath -ldflags "$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  publish "$out" "$kubernetes_dir"
}

build_etcd() {
  progress "etcd $etcd_version"
  local dir out
  dir=$(new_module go.etcd.io/etcd/server/v3 "$etcd_version" etcd </dev/null)
  out="$work/etcd-out"
  mkdir -p "$out"
  (cd "$dir" && "$go_bin" build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
  publish "$out" "$etcd_dir"
}

build_kwok() {
  progress "kwok $kwok_version"
  local dir src out
  dir=$(new_module sigs.k8s.io/kwok "$kwok_version" kwok </dev/null)
  out="$work/kwok-out"
  mkdir -p "$out"
  (cd "$dir" && "$go_bin" build -trimpath -ldflags "-s -w" -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok)
  # kwok's stock stages (how a fake pod and node move through their lifecycle) ship in its module.
  src=$("$go_bin" mod download -json "sigs.k8s.io/kwok@$kwok_version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  cp -r "$src/kustomize/stage" "$out/stage"
  chmod -R u+w "$out/stage"
  publish "$out" "$kwok_dir"
}

build_kserve() {
  progress "KServe $kserve_version controller manager"
  local src dir out
  src=$("$go_bin" mod download -json "github.com/kserve/kserve@$kserve_version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  # KServe's go.mod has replace lines `go install` refuses; a module that takes its go.mod (replaces
  # included) and requires KServe itself builds the command with the dependency versions KServe builds with.
  dir="$work/kserve"
  mkdir -p "$dir"
  sed -e 's#^module .*#module berg.local/cluster-tools/kserve#' "$src/go.mod" >"$dir/go.mod"
  printf '\nrequire github.com/kserve/kserve %s\n' "$kserve_version" >>"$dir/go.mod"
  # Its webhook server listens on every address (controller-runtime's default, no flag changes it); servers
  # here listen on loopback only. The command is one main.go of KServe's packages: built as this module's own
  # main package, a copy whose only change is Host: "127.0.0.1".
  mkdir -p "$dir/manager"
  sed 's#^\(\s*\)Port: options.webhookPort,#\1Host: "127.0.0.1",\n\1Port: options.webhookPort,#' \
    "$src/cmd/manager/main.go" >"$dir/manager/main.go"
  grep -q 'Host: "127.0.0.1"' "$dir/manager/main.go" ||
    { echo "cluster-tools: KServe $kserve_version's cmd/manager/main.go changed; update the loopback patch" >&2; exit 1; }
  out="$work/kserve-out"
  mkdir -p "$out"
  (cd "$dir" && "$go_bin" build -trimpath -ldflags "-s -w" -o "$out/kserve-manager" ./manager)
  # The CRDs, default configuration and webhook configurations of the same release: the controller must
  # run against its own.
  mkdir -p "$out/kserve-config"
  cp -r "$src/config/crd" "$src/config/configmap" "$src/config/storagecontainers" "$src/config/webhook" \
    "$out/kserve-config/"
  chmod -R u+w "$out/kserve-config"
  publish "$out" "$kserve_dir"
}

build_prometheus_operator() {
  progress "prometheus-operator $prometheus_operator_version CRDs (files only, nothing to build)"
  local src out
  src=$("$go_bin" mod download -json "github.com/prometheus-operator/prometheus-operator@$prometheus_operator_version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  out="$work/prometheus-operator-out"
  mkdir -p "$out"
  cp -r "$src/example/prometheus-operator-crd" "$out/prometheus-operator-crd"
  chmod -R u+w "$out"
  publish "$out" "$prometheus_operator_dir"
}

for component in "${missing[@]}"; do
  "build_$component"
done
if ((${#missing[@]})); then
  echo "cluster-tools: built ${missing[*]} in $((SECONDS - started)) s"
fi

# Link the cached binaries into the clone (hard links where the cache shares its file system).
rm -rf "$link_dir"
mkdir -p "$link_dir"
for dir in "$kubernetes_dir" "$etcd_dir" "$kwok_dir" "$kserve_dir" "$prometheus_operator_dir" "$knative_serving_dir"; do
  for file in "$dir"/*; do
    name=$(basename "$file")
    if [ -d "$file" ]; then
      cp -r "$file" "$link_dir/$name"
    else
      ln "$file" "$link_dir/$name" 2>/dev/null || cp "$file" "$link_dir/$name"
    fi
  done
done
