#!/usr/bin/env bash
# Build Berg's seven images on this machine, without a registry (what `make images` runs before its tests).
#   scripts/images.sh          install the tools if missing, make the base images, build every image
#   scripts/images.sh prepare  only the tools, the containers.conf and the two base images
#
# The tools come from Debian (podman, buildah, mmdebstrap, runc, slirp4netns), apt-get like scripts/bootstrap.sh.
# Nothing is pulled: the images' build arguments name two local stand-ins for the public bases of
# services/Dockerfile and pipelines/Dockerfile, and every build runs with --pull=never.
#   localhost/berg-base-python:bookworm  Debian bookworm (minbase) with its python3 (3.11, /usr/bin/python3),
#                                        made by mmdebstrap from Debian's packages and `podman import`ed; for
#                                        python:3.11.14-slim-bookworm (whose python is /usr/local/bin/python)
#   localhost/berg-uv:<version>          /uv and /uvx from the uv wheel on PyPI, for ghcr.io/astral-sh/uv
# The base image is cached by its inputs (suite, packages, mirror, this script's recipe) as a tarball under
# ${XDG_CACHE_HOME:-~/.cache}/berg/images, outside the clone: a second run imports it again only if podman
# lost it, and builds nothing. Which images exist, and with which build arguments, is skaffold.yaml's table
# (build.artifacts[].docker.buildArgs); the local tags are localhost/berg-<name>:dev.
#
# podman runs with a containers.conf of this script's own (CONTAINERS_CONF, in the cache directory; the
# tests read the same file): runc, because crun fails on this kernel's hybrid cgroup layout and on raising
# RLIMIT_NOFILE, and rlimits the hard limits allow. RUN steps reach PyPI through slirp4netns, a user-mode
# network of the builds' own: the host's network and its sysctls are left as they are.
set -euo pipefail

target="${1:-build}"
case "$target" in
  build | prepare) ;;
  *) echo "usage: $0 [build|prepare]" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "$0")/.." && pwd)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/berg/images"
mkdir -p "$cache_dir"

started=$SECONDS
step() { echo "images: [$((SECONDS - started))s] $*"; }

# --- tools ---------------------------------------------------------------------------------------------
packages=()
for tool in podman buildah mmdebstrap runc slirp4netns; do
  command -v "$tool" >/dev/null 2>&1 || packages+=("$tool")
done
if ((${#packages[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to apt-get install ${packages[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  step "apt-get install ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "images: podman runs rootful here (run as root): its rootless mode needs subuid ranges this script does not set up" >&2
  exit 1
fi

export CONTAINERS_CONF="$cache_dir/containers.conf"
# Podman asks for a container's RLIMIT_NOFILE and RLIMIT_NPROC above this machine's hard limits by default,
# which the kernel refuses here (no CAP_SYS_RESOURCE; crun cannot raise them at all): the hard limits instead.
# podman's own processes (podman, conmon) run with RLIMIT_NPROC at most 32768 (measured: their
# /proc/<pid>/limits), and a container's cannot exceed its parent's.
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
ulimits="\"nproc=$nproc:$nproc\""
[ "$nofile" = unlimited ] || ulimits="\"nofile=$nofile:$nofile\", $ulimits"
cat >"$CONTAINERS_CONF" <<CONF
# Written by scripts/images.sh (its tests read it too): podman on this machine's kernel.
[containers]
default_ulimits = [$ulimits]

[engine]
# crun fails on the hybrid (v1 + unified) cgroup layout; runc handles it.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
# Containers here use slirp4netns or no network; netavark is podman's own backend (no CNI plugins needed).
network_backend = "netavark"
CONF

# --- the base image: Debian bookworm's python3 -----------------------------------------------------------
suite=bookworm
mirror="http://deb.debian.org/debian"
# python3: the interpreter (3.11) the virtual environment is made for; passwd: groupadd/useradd;
# ca-certificates: TLS for uv; libgomp1: XGBoost's OpenMP runtime, so serving's and training's runtime
# stages find it installed and fetch nothing.
base_packages="python3,ca-certificates,passwd,libgomp1"
base_image="localhost/berg-base-python:$suite"
# The certificate authorities this host adds to Debian's (/usr/local/share/ca-certificates: here, the
# TLS-intercepting egress proxy's) go into the base too, and SSL_CERT_FILE names the bundle, so uv inside a
# build reaches PyPI as uv on this host does. Only the local stand-in carries them, never the public base.
local_cas=/usr/local/share/ca-certificates
cas_digest=$(find "$local_cas" -type f -name '*.crt' -print0 2>/dev/null | sort -z | xargs -0 -r cat | sha256sum | cut -c1-16)
recipe_version=2
base_key=$(printf '%s\n' "$recipe_version" "$suite" "$mirror" "$base_packages" "$(dpkg --print-architecture)" "$cas_digest" |
  sha256sum | cut -c1-16)
base_tar="$cache_dir/base-python-$suite-$base_key.tar"
base_tag="$base_image-$base_key"

if [ ! -s "$base_tar" ]; then
  step "mmdebstrap --variant=minbase $suite (+ $base_packages) into $base_tar (once per recipe)"
  partial=$(mktemp "$cache_dir/base.XXXXXX")
  trap 'rm -f "$partial"' EXIT
  # Apt's lists and caches stay out of the image; the suite's security updates come with it.
  mmdebstrap --quiet --variant=minbase --include="$base_packages" --format=tar \
    --aptopt='Acquire::Languages "none"' \
    --customize-hook="if [ -d $local_cas ]; then cp $local_cas/*.crt \"\$1$local_cas/\" 2>/dev/null || true; fi" \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$suite" "$partial" "deb $mirror $suite main" "deb $mirror $suite-updates main" \
    "deb http://deb.debian.org/debian-security $suite-security main"
  mv -f "$partial" "$base_tar"
  trap - EXIT
else
  step "base image tarball cached: $base_tar"
fi
if ! podman image exists "$base_tag"; then
  step "podman import $base_tar as $base_image"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    "$base_tar" "$base_tag" >/dev/null
fi
podman tag "$base_tag" "$base_image"

# --- uv: the stand-in for ghcr.io/astral-sh/uv, from the wheel of the version the Dockerfiles name ----------
uv_version=$(sed -n 's|^ARG UV_IMAGE=ghcr.io/astral-sh/uv:\([0-9.]*\)@.*|\1|p' "$repo/services/Dockerfile")
[ -n "$uv_version" ] || { echo "images: no ARG UV_IMAGE=ghcr.io/astral-sh/uv:<version>@... in services/Dockerfile" >&2; exit 1; }
uv_image="localhost/berg-uv:$uv_version"
if ! podman image exists "$uv_image"; then
  step "uv $uv_version from its PyPI wheel into $uv_image"
  uv_dir="$cache_dir/uv-$uv_version"
  if [ ! -x "$uv_dir/root/uv" ]; then
    work=$(mktemp -d "$cache_dir/uv.XXXXXX")
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform "manylinux_2_17_$(uname -m)" \
      --python-version 3.11 --dest "$work" "uv==$uv_version"
    mkdir -p "$work/root"
    python3 - "$work" <<'PY'
import sys, zipfile
from pathlib import Path

work = Path(sys.argv[1])
(wheel,) = work.glob("uv-*.whl")
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if "/scripts/" in name and name.rsplit("/", 1)[-1] in {"uv", "uvx"}:
            target = work / "root" / name.rsplit("/", 1)[-1]
            target.write_bytes(archive.read(name))
            target.chmod(0o755)
PY
    rm -rf "$uv_dir"
    mv "$work" "$uv_dir"
  fi
  tar -C "$uv_dir/root" -cf - uv uvx | podman import --quiet - "$uv_image" >/dev/null
fi

[ "$target" = prepare ] && { step "prepared (CONTAINERS_CONF=$CONTAINERS_CONF)"; exit 0; }

# --- the images, from skaffold.yaml's table --------------------------------------------------------------
cd "$repo"
python=(uv run --locked --quiet python)
command -v uv >/dev/null 2>&1 || python=(python3 -m uv run --locked --quiet python)
mapfile -t artifacts < <("${python[@]}" - <<'PY'
import yaml

# One line per image: name, Dockerfile, then KEY=VALUE build arguments, separated by tabs (a value may hold spaces).
for artifact in yaml.safe_load(open("skaffold.yaml"))["build"]["artifacts"]:
    name = artifact["image"].rsplit("/", 1)[-1]
    args = [f"{key}={value}" for key, value in artifact["docker"].get("buildArgs", {}).items()]
    print("\t".join([name, artifact["docker"]["dockerfile"], *args]))
PY
)
# The builds' RUN steps (uv sync) reach PyPI from a network namespace of their own, which slirp4netns connects
# through user-mode networking (no bridge, no forwarding: the host's interfaces and sysctls stay as they are;
# buildah 1.28 takes a namespace's path, not slirp4netns itself).
unshare --net sleep infinity &
netns_holder=$!
slirp4netns --configure --mtu=65520 --disable-host-loopback "$netns_holder" tap0 >"$cache_dir/slirp4netns.log" 2>&1 &
slirp=$!
trap 'kill "$slirp" "$netns_holder" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  nsenter --net="/proc/$netns_holder/ns/net" ip -4 -o addr show tap0 2>/dev/null | grep -q 'inet ' && break
  kill -0 "$slirp" 2>/dev/null || { cat "$cache_dir/slirp4netns.log" >&2; exit 1; }
  sleep 0.1
done
step "build network: slirp4netns (pid $slirp) into the namespace of pid $netns_holder"
# uv resolves nothing (--locked) and downloads from the lockfile's two hosts, in parallel: name lookups that
# burst through slirp4netns's DNS get lost (uv fails with "Temporary failure in name resolution"), so the
# builds get the addresses this host resolves now, in their /etc/hosts, and ask no DNS server.
hosts=()
for host in pypi.org files.pythonhosted.org; do
  address=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')
  [ -n "$address" ] || { echo "images: cannot resolve $host (the builds download from it)" >&2; exit 1; }
  hosts+=(--add-host "$host:$address")
done

for line in "${artifacts[@]}"; do
  IFS=$'\t' read -r -a fields <<<"$line"
  name=${fields[0]}
  dockerfile=${fields[1]}
  build_args=(--build-arg "PYTHON_BASE=$base_image" --build-arg "UV_IMAGE=$uv_image")
  for arg in "${fields[@]:2}"; do
    build_args+=(--build-arg "$arg")
  done
  step "podman build localhost/$name:dev ($dockerfile ${fields[*]:2})"
  podman build --quiet --pull=never --network="ns:/proc/$netns_holder/ns/net" "${hosts[@]}" --layers "${build_args[@]}" \
    -f "$dockerfile" -t "localhost/$name:dev" . >/dev/null
done
step "built ${#artifacts[@]} images"
