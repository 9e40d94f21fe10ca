"""The README's first command: a local control plane, a sample app, and the main job against it."""

from __future__ import annotations

import os
import tempfile
import time


def run_demo(*, keep: bool = False) -> int:
    # Ephemeral Prefect in a throwaway home, no telemetry; set before Prefect is imported.
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="kubekeep-demo-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

    from flows.inventory import inventory
    from kubekeep.testbed import sample_app
    from kubekeep.testbed.controlplane import ControlPlane

    print("Starting the local test bed (etcd, kube-apiserver, controller-manager, scheduler, kwok)...")
    with ControlPlane() as cp:
        print(f"  kube-apiserver {cp.server}; KUBECONFIG={cp.kubeconfig_path}")
        with cp.cluster() as cluster:
            sample_app.create(cluster, "shop")
            sample_app.fill_volume(sample_app.volume_path(cluster, "shop", "uploads"), seed="demo")
        print("Sample app 'shop' is Ready. Running the flow...")
        counts = inventory(kubeconfig=str(cp.kubeconfig_path), namespace="shop")
        print("Objects found in namespace shop:")
        for kind, n in sorted(counts.items()):
            print(f"  {kind:<32} {n}")
        if keep:
            print("Control plane stays up; Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0
