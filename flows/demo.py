"""The README's first command: a local control plane, a sample app, and the main job against it."""

from __future__ import annotations

import os
import time
from pathlib import Path


def run_demo(*, keep: bool = False) -> int:
    """Run the demo against the Prefect API in effect (``kubekeep demo`` provides one: PREFECT_API_URL, or a
    temporary server from the pre-migrated template, with Prefect's logs in the command's log file)."""
    from blocks import ClusterConnection, EncryptionKey, LocationProfile
    from flows.backup import backup
    from kubekeep.catalog import latest_restore_point
    from kubekeep.testbed import sample_app
    from kubekeep.testbed.controlplane import ControlPlane

    location_dir = Path(os.environ.get("KUBEKEEP_DEMO_LOCATION") or Path.cwd() / "kubekeep-demo-location")

    print("Starting the local test bed (etcd, kube-apiserver, controller-manager, scheduler, kwok)...")
    with ControlPlane() as cp:
        print(f"  kube-apiserver {cp.server}; KUBECONFIG={cp.kubeconfig_path}")
        with cp.cluster() as cluster:
            sample_app.create(cluster, "shop")
            sample_app.fill_volume(sample_app.volume_path(cluster, "shop", "uploads"), seed="demo")
        print(f"Sample app 'shop' is Ready. Backing it up to {location_dir} ...")
        location = LocationProfile(kind="filesystem", path=str(location_dir))
        key = EncryptionKey.model_validate({"passphrase": os.environ.get("KUBEKEEP_PASSWORD", "kubekeep-demo")})
        conn = ClusterConnection(name="testbed", kubeconfig_path=str(cp.kubeconfig_path))
        rp_id = backup(app="shop", namespaces=["shop"], location=location, encryption_key=key, cluster=conn,
                       init=True)
        with key.catalog(location) as catalog:
            point = latest_restore_point(catalog, "shop")
        assert point is not None and point.id == rp_id
        print(f"\nRestore point {point.id}: {point.status}, {point.object_count} objects, "
              f"{point.volume_count} volumes, {point.logical_bytes} bytes of volume data "
              f"({point.stored_bytes} new bytes stored, encrypted).")
        password = "" if os.environ.get("KUBEKEEP_PASSWORD") else "KUBEKEEP_PASSWORD=kubekeep-demo "
        print(f"List restore points: {password}kubekeep restore-points --location {location_dir}")
        if keep:
            print("Control plane stays up; Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0
