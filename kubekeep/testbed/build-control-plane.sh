#!/usr/bin/env bash
# Build the test bed's control-plane binaries from Go modules into a cache
# directory outside the repository, keyed by version:
#   $KUBEKEEP_CACHE_DIR/bin/k8s-<ver>/{kube-apiserver,kube-controller-manager,kube-scheduler}
#   $KUBEKEEP_CACHE_DIR/bin/etcd-<ver>/etcd
#   $KUBEKEEP_CACHE_DIR/bin/kwok-<ver>/kwok
# Re-running is cheap: binaries already in the cache are kept. Builds of one
# component and version are serialized by a lock file, so test beds started at
# once by several processes wait for one build instead of racing it.
#
#   build-control-plane.sh all      etcd, Kubernetes ($K8S_VERSION) and kwok
#   build-control-plane.sh older    Kubernetes $K8S_OLDER_VERSION (same etcd and kwok)
#   build-control-plane.sh etcd|kubernetes|kwok
#
# Versions come from versions.sh beside this script, each overridable by
# KUBEKEEP_K8S_VERSION, KUBEKEEP_K8S_OLDER_VERSION, KUBEKEEP_ETCD_VERSION, KUBEKEEP_KWOK_VERSION.
set -euo pipefail

# shellcheck source=versions.sh
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"
K8S_VERSION="${KUBEKEEP_K8S_VERSION:-$K8S_VERSION}"
K8S_OLDER_VERSION="${KUBEKEEP_K8S_OLDER_VERSION:-$K8S_OLDER_VERSION}"
ETCD_VERSION="${KUBEKEEP_ETCD_VERSION:-$ETCD_VERSION}"
KWOK_VERSION="${KUBEKEEP_KWOK_VERSION:-$KWOK_VERSION}"
CACHE="${KUBEKEEP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubekeep}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export CGO_ENABLED=0

etcd_dir="$CACHE/bin/etcd-$ETCD_VERSION"
kwok_dir="$CACHE/bin/kwok-$KWOK_VERSION"
work="$CACHE/build"
mkdir -p "$etcd_dir" "$kwok_dir" "$work"

log() { printf '[build-control-plane] %s\n' "$*" >&2; }

# Hold an exclusive lock on $work/.lock-<name> for the rest of the calling function's
# subshell; a second builder of the same thing waits here, then finds it cached.
lock() {
  exec {lock_fd}>"$work/.lock-$1"
  if ! flock -n "$lock_fd"; then
    log "$1: another build is running; waiting for it"
    flock "$lock_fd"
  fi
}

build_kubernetes() (
  K8S_VERSION="$1"
  local k8s_dir="$CACHE/bin/k8s-$K8S_VERSION"
  local mod="$work/k8s-$K8S_VERSION"
  mkdir -p "$k8s_dir"
  lock "k8s-$K8S_VERSION"
  if [[ -x "$k8s_dir/kube-apiserver" && -x "$k8s_dir/kube-controller-manager" && -x "$k8s_dir/kube-scheduler" ]]; then
    log "kubernetes $K8S_VERSION: cached in $k8s_dir"; return
  fi
  mkdir -p "$mod"
  # The staging modules (k8s.io/api, ...) are replaced by ./staging paths in
  # k8s.io/kubernetes' own go.mod; a consumer must map each one to its
  # published v0.X.Y. Take the list from that version's go.mod.
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >"$mod/dl.json"
  local gomod staging_ver
  gomod=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["GoMod"])' "$mod/dl.json")
  staging_ver="v0.${K8S_VERSION#v1.}"
  {
    echo "module kubekeep.local/controlplane"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" \
      | awk -v v="$staging_ver" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$mod/go.mod"
  printf 'package controlplane\n' >"$mod/doc.go"
  local pkg=k8s.io/component-base/version
  local commit
  commit=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1])).get("Origin",{}).get("Hash",""))' "$mod/dl.json")
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION") -X $pkg.gitTreeState=clean -X $pkg.gitCommit=${commit:-unknown} -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"
  log "building kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler); this takes a while on 2 cores"
  (cd "$mod" && go build -trimpath -ldflags "$ldflags" -o "$mod/out/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler)
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    mv "$mod/out/$b" "$k8s_dir/$b.tmp" && mv "$k8s_dir/$b.tmp" "$k8s_dir/$b"
  done
)

build_etcd() (
  lock "etcd-$ETCD_VERSION"
  if [[ -x "$etcd_dir/etcd" ]]; then log "etcd $ETCD_VERSION: cached in $etcd_dir"; return; fi
  local mod="$work/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  cat >"$mod/go.mod" <<GOMOD
module kubekeep.local/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat >"$mod/main.go" <<'GO'
// Command etcd starts an etcd server (the upstream etcdmain entry point).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  log "building etcd $ETCD_VERSION"
  (cd "$mod" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$mod/etcd" .)
  mv "$mod/etcd" "$etcd_dir/etcd.tmp" && mv "$etcd_dir/etcd.tmp" "$etcd_dir/etcd"
)

build_kwok() (
  lock "kwok-$KWOK_VERSION"
  if [[ -x "$kwok_dir/kwok" ]]; then log "kwok $KWOK_VERSION: cached in $kwok_dir"; return; fi
  log "building kwok $KWOK_VERSION"
  local out="$work/kwok-$KWOK_VERSION"
  mkdir -p "$out"
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$out/kwok" "$kwok_dir/kwok.tmp" && mv "$kwok_dir/kwok.tmp" "$kwok_dir/kwok"
)

what="${1:-all}"
case "$what" in
  all) build_etcd; build_kubernetes "$K8S_VERSION"; build_kwok ;;
  older) build_kubernetes "$K8S_OLDER_VERSION" ;;
  etcd) build_etcd ;;
  kubernetes) build_kubernetes "$K8S_VERSION" ;;
  kwok) build_kwok ;;
  *) echo "usage: $0 [all|older|etcd|kubernetes|kwok]" >&2; exit 2 ;;
esac
log "done: $CACHE/bin"
