# The test bed's component versions: the one home for them. build-control-plane.sh
# sources this file and kubekeep.testbed.controlplane parses it (plain NAME=value lines).
# Each may be overridden by the environment variable KUBEKEEP_<NAME>.
K8S_VERSION=v1.36.3
# An older Kubernetes minor, for migration tests across versions (new -> old, old -> new).
# v1.33 does not serve resource.k8s.io/v1 nor storage.k8s.io/v1 VolumeAttributesClass
# (both GA in v1.34); docs/testbed.md lists the drift.
K8S_OLDER_VERSION=v1.33.13
ETCD_VERSION=v3.6.8
KWOK_VERSION=v0.7.0
