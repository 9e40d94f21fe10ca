#!/usr/bin/env bash
# Build the benchmark peers from Go modules into a cache directory outside the
# repository, keyed by version (like kubekeep/testbed/build-control-plane.sh):
#   $KUBEKEEP_CACHE_DIR/bin/restic-<ver>/restic
#   $KUBEKEEP_CACHE_DIR/bin/kopia-<ver>/kopia
#   $KUBEKEEP_CACHE_DIR/bin/velero-<ver>/velero
#   $KUBEKEEP_CACHE_DIR/bin/velero-plugin-for-aws-<ver>/velero-plugin-for-aws
# Each directory also gets `build-seconds` (wall time of the first build, the
# module downloads included) and `build-go` (the Go version used).
# Re-running is cheap: binaries already in the cache are kept.
#
#   benchmarks/build-peers.sh [all|restic|kopia|velero|velero-plugin-for-aws]
#   benchmarks/build-peers.sh path NAME      # print the cached binary's path (build it if missing)
#
# No code of these projects is kept in this repository: restic is a plain
# `go install`; kopia is built through a wrapper module that requires it
# (`go install github.com/kopia/kopia@ver` is refused); Velero and its AWS
# plugin are built inside a writable copy of their module source directory
# (`go mod download -json`), because Velero's go.mod has replace directives.
set -euo pipefail

RESTIC_VERSION="${KUBEKEEP_RESTIC_VERSION:-v0.18.1}"
KOPIA_VERSION="${KUBEKEEP_KOPIA_VERSION:-v0.21.1}"
VELERO_VERSION="${KUBEKEEP_VELERO_VERSION:-v1.18.3}"
VELERO_AWS_VERSION="${KUBEKEEP_VELERO_AWS_VERSION:-v1.14.3}"
# Velero v1.18.3 requires a k8s.io/cli-runtime patch release that its other
# k8s.io requirements refuse; v0.33.10 is the one that builds.
VELERO_CLI_RUNTIME="${KUBEKEEP_VELERO_CLI_RUNTIME:-v0.33.10}"
CACHE="${KUBEKEEP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubekeep}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export CGO_ENABLED=0
work="$CACHE/build"
mkdir -p "$work"

log() { printf '[build-peers] %s\n' "$*" >&2; }

# finish DIR NAME BUILT START: move a built binary into the cache, record the time
finish() {
  local dir=$1 name=$2 built=$3 start=$4
  mv "$built" "$dir/$name.tmp" && mv "$dir/$name.tmp" "$dir/$name"
  echo $(( $(date +%s) - start )) >"$dir/build-seconds"
  go env GOVERSION >"$dir/build-go"
  log "$name: built in $(cat "$dir/build-seconds") s -> $dir/$name"
}

# module_dir MODULE@VERSION: a writable copy of the module's source, in $work
module_dir() {
  local modver=$1 dest=$2 src
  src=$(go mod download -json "$modver" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d.get("Dir") or sys.exit(d.get("Error","no Dir")))')
  rm -rf "$dest"
  cp -r "$src" "$dest"
  chmod -R u+w "$dest"
}

build_restic() {
  local dir="$CACHE/bin/restic-$RESTIC_VERSION"
  if [[ -x "$dir/restic" ]]; then log "restic $RESTIC_VERSION: cached in $dir"; return; fi
  mkdir -p "$dir"
  local start; start=$(date +%s)
  log "building restic $RESTIC_VERSION"
  GOBIN="$work/restic-$RESTIC_VERSION" go install -trimpath -ldflags "-s -w" \
    "github.com/restic/restic/cmd/restic@$RESTIC_VERSION"
  finish "$dir" restic "$work/restic-$RESTIC_VERSION/restic" "$start"
}

build_kopia() {
  local dir="$CACHE/bin/kopia-$KOPIA_VERSION"
  if [[ -x "$dir/kopia" ]]; then log "kopia $KOPIA_VERSION: cached in $dir"; return; fi
  mkdir -p "$dir"
  local start; start=$(date +%s)
  local mod="$work/kopia-$KOPIA_VERSION"
  rm -rf "$mod" && mkdir -p "$mod"
  # kopia's command is the main package at its module root: it cannot be
  # imported, so the wrapper only requires the module and builds that package.
  cat >"$mod/go.mod" <<GOMOD
module kubekeep.local/kopia

go 1.24

require github.com/kopia/kopia $KOPIA_VERSION
GOMOD
  log "building kopia $KOPIA_VERSION"
  (cd "$mod" && go mod download github.com/kopia/kopia \
     && go build -trimpath -ldflags "-s -w -X github.com/kopia/kopia/repo.BuildVersion=${KOPIA_VERSION#v}" \
          -o "$mod/kopia" github.com/kopia/kopia)
  finish "$dir" kopia "$mod/kopia" "$start"
}

build_velero() {
  local dir="$CACHE/bin/velero-$VELERO_VERSION"
  if [[ -x "$dir/velero" ]]; then log "velero $VELERO_VERSION: cached in $dir"; return; fi
  mkdir -p "$dir"
  local start; start=$(date +%s)
  local src="$work/velero-$VELERO_VERSION"
  log "building velero $VELERO_VERSION (from its module source; replace k8s.io/cli-runtime => $VELERO_CLI_RUNTIME)"
  module_dir "github.com/vmware-tanzu/velero@$VELERO_VERSION" "$src"
  local pkg=github.com/vmware-tanzu/velero/pkg/buildinfo
  (cd "$src" && go mod edit -replace "k8s.io/cli-runtime=k8s.io/cli-runtime@$VELERO_CLI_RUNTIME" \
     && go build -trimpath -ldflags "-s -w -X $pkg.Version=$VELERO_VERSION -X $pkg.GitTreeState=clean" \
          -o "$src/out/velero" ./cmd/velero)
  finish "$dir" velero "$src/out/velero" "$start"
  rm -rf "$src"
}

build_velero_aws() {
  local dir="$CACHE/bin/velero-plugin-for-aws-$VELERO_AWS_VERSION"
  if [[ -x "$dir/velero-plugin-for-aws" ]]; then log "velero-plugin-for-aws $VELERO_AWS_VERSION: cached in $dir"; return; fi
  mkdir -p "$dir"
  local start; start=$(date +%s)
  local src="$work/velero-plugin-for-aws-$VELERO_AWS_VERSION"
  log "building velero-plugin-for-aws $VELERO_AWS_VERSION (from its module source)"
  module_dir "github.com/vmware-tanzu/velero-plugin-for-aws@$VELERO_AWS_VERSION" "$src"
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$src/out/velero-plugin-for-aws" ./velero-plugin-for-aws)
  finish "$dir" velero-plugin-for-aws "$src/out/velero-plugin-for-aws" "$start"
  rm -rf "$src"
}

path_of() {
  case "$1" in
    restic) build_restic; echo "$CACHE/bin/restic-$RESTIC_VERSION/restic" ;;
    kopia) build_kopia; echo "$CACHE/bin/kopia-$KOPIA_VERSION/kopia" ;;
    velero) build_velero; echo "$CACHE/bin/velero-$VELERO_VERSION/velero" ;;
    velero-plugin-for-aws) build_velero_aws; echo "$CACHE/bin/velero-plugin-for-aws-$VELERO_AWS_VERSION/velero-plugin-for-aws" ;;
    *) echo "unknown peer: $1" >&2; exit 2 ;;
  esac
}

what="${1:-all}"
case "$what" in
  all) build_restic; build_kopia; build_velero; build_velero_aws ;;
  restic) build_restic ;;
  kopia) build_kopia ;;
  velero) build_velero ;;
  velero-plugin-for-aws) build_velero_aws ;;
  path) path_of "${2:?usage: $0 path NAME}" ;;
  *) echo "usage: $0 [all|restic|kopia|velero|velero-plugin-for-aws|path NAME]" >&2; exit 2 ;;
esac
[[ "$what" == path ]] || log "done: $CACHE/bin"
