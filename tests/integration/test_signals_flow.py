"""Signals end to end (issue 13): the backup flow scores each point on the real test bed (kube-apiserver,
SeaweedFS S3, Prefect API); a simulated attack is flagged, a Prefect event and the app's artifact say so,
`kubekeep signals` lists and acknowledges it, `kubekeep restore --last-clean` picks the point before it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.signals_scenarios import AppVolume
from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from kubekeep.catalog import last_clean_point, list_signals, suspect_points
from kubekeep.cluster import Cluster
from kubekeep.testbed import sample_app
from tasks.signals import SUSPECT_EVENT, artifact_key

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "signals end to end"
NOISE = ("Traceback", "Starting temporary server", "Encountered exception")


def _key() -> EncryptionKey:
    return EncryptionKey(passphrase=PASSPHRASE, cheap_kdf=True)


def _location(seaweedfs: Any, namespace: str) -> LocationProfile:
    return LocationProfile(kind="s3", bucket=seaweedfs.plain_bucket, prefix=f"signals-{namespace}/",
                           endpoint_url=seaweedfs.endpoint_url, region=seaweedfs.region,
                           access_key_id=seaweedfs.access_key, secret_access_key=seaweedfs.secret_key)


def _kubekeep(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    for noise in NOISE:
        assert noise not in result.stdout + result.stderr
    return result.stdout


def _one_line_error(result: subprocess.CompletedProcess[str], phrase: str) -> None:
    assert result.returncode != 0, result.stdout[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and phrase in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _events(api: str, resource_id: str, *, timeout: float = 60) -> list[dict[str, Any]]:
    """Events about ``resource_id`` the Prefect API has stored (events are sent in the background: poll)."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.post(f"{api}/events/filter", json={
            "filter": {"event": {"name": [SUSPECT_EVENT]}, "resource": {"id": [resource_id]}}, "limit": 10})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["events"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(1)


def _artifacts(api: str, key: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}})
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def shop_volume(cluster: Cluster, namespace: str) -> Iterator[AppVolume]:
    sample_app.create(cluster, namespace)
    sample_app.fill_volume(sample_app.volume_path(cluster, namespace, "data-db-0"), seed=namespace)
    volume = AppVolume(sample_app.volume_path(cluster, namespace, "uploads") / "app", seed=5)
    volume.create()
    yield volume
    cluster.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{namespace}-shop-view")


def test_encryption_is_flagged_acknowledged_and_last_clean_restores_the_point_before(
        prefect_api: str, test_cluster, cluster: Cluster, namespace: str,  # type: ignore[no-untyped-def]
        shop_volume: AppVolume, seaweedfs, tmp_path: Path) -> None:
    location = _location(seaweedfs, namespace)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))

    def run_backup(**kwargs: Any) -> str:
        return backup(app="shop", namespaces=[namespace], location=location, encryption_key=_key(), cluster=conn,
                      **kwargs)

    benign = [run_backup(init=True)]
    for day in range(1, 4):
        shop_volume.benign_day(day)
        benign.append(run_backup())
    clean_tree = _digests(shop_volume.root)
    with _key().catalog(location, cache_dir=tmp_path / "cache") as catalog:
        assert suspect_points(catalog, "shop") == set()
        verdicts = {r.restore_point_id: r for r in list_signals(catalog, app="shop", volumes=False)}
        assert set(verdicts) == set(benign)  # every point scored, none suspect
        assert last_clean_point(catalog, "shop") == benign[-1]

    assert shop_volume.encrypt(0.30) > 0  # ransomware: 30 % of the files overwritten in place
    attacked = run_backup()
    shop_volume.benign_day(4)  # the app keeps running on the encrypted data
    after = run_backup()
    with _key().catalog(location, cache_dir=tmp_path / "cache") as catalog:
        assert suspect_points(catalog, "shop") == {attacked}
        verdict = list_signals(catalog, restore_point_ids=[attacked], volumes=False)[0]
        assert verdict.suspect and verdict.score >= verdict.threshold == 6
        assert any("high-entropy" in r and f"{namespace}/uploads" in r for r in verdict.reasons), verdict.reasons
        assert last_clean_point(catalog, "shop") == benign[-1]  # neither the attack nor the point after it

    # Prefect: an event about the suspect point, and the app's artifact under its stable key
    events = _events(prefect_api, f"kubekeep.restore-point.{attacked}")
    assert len(events) == 1, events
    event = events[0]
    assert event["payload"]["app"] == "shop" and event["payload"]["score"] >= 6
    assert any(r["prefect.resource.id"] == "kubekeep.app.shop" for r in event["related"])
    assert any(r["prefect.resource.id"].startswith("prefect.flow-run.") for r in event["related"])
    assert not _events(prefect_api, f"kubekeep.restore-point.{after}", timeout=0)
    artifacts = _artifacts(prefect_api, artifact_key("shop"))
    assert any(attacked in (a.get("data") or "") for a in artifacts), artifacts

    env = {**seaweedfs.cli_environment(), "KUBEKEEP_S3_ADDRESSING_STYLE": "path", "PREFECT_API_URL": prefect_api,
           "KUBECONFIG": str(test_cluster.kubeconfig), "KUBEKEEP_PASSWORD": PASSPHRASE,
           "KUBEKEEP_TEST_CHEAP_KDF": "1", "COLUMNS": "250", "KUBEKEEP_LOG_DIR": str(tmp_path / "logs")}
    loc = f"s3://{seaweedfs.plain_bucket}/signals-{namespace}/"
    listing = _ok(_kubekeep(["signals", "list", "-l", loc, "--app", "shop"], env))
    marks = {p: next(line for line in listing.splitlines() if p in line) for p in [*benign, attacked, after]}
    assert "suspect" in marks[attacked] and "after-suspect" in marks[after]
    assert all(" clean " in marks[p] for p in benign)
    assert f"last clean point of shop: {benign[-1]}" in listing
    assert attacked in _ok(_kubekeep(["signals", "list", "-l", loc, "--suspect"], env))
    assert "SUSPECT" in _ok(_kubekeep(["restore-points", "-l", loc, "--app", "shop"], env))
    shown = _ok(_kubekeep(["signals", "show", attacked, "-l", loc], env))
    assert "high-entropy" in shown and f"{namespace}/uploads" in shown

    # --last-clean restores the files of the point before the attack: the data as it was, not encrypted
    target = tmp_path / "restored"
    restored = _ok(_kubekeep(["restore", "-l", loc, "--app", "shop", "--last-clean",
                              "--files", f"{namespace}/uploads:app", "--target", str(target)], env))
    assert restored.strip().endswith(f"from {benign[-1]}"), restored
    assert _digests(target / "app") == clean_tree
    usage = _kubekeep(["restore", "-l", loc, "--last-clean", "--files", f"{namespace}/uploads",
                       "--target", str(target)], env)
    assert usage.returncode == 2 and "--last-clean goes with --app" in usage.stderr  # a usage error, as typer's
    assert "Traceback" not in usage.stdout + usage.stderr

    # a false positive is acknowledged once, then the point and those after it are clean again
    _one_line_error(_kubekeep(["signals", "ack", benign[-1], "-l", loc], env), "is not suspect")
    acked = _ok(_kubekeep(["signals", "ack", attacked, "-l", loc, "--by", "alice", "--reason", "drill"], env))
    assert f"last clean point of shop: {after}" in acked
    _one_line_error(_kubekeep(["signals", "ack", attacked, "-l", loc], env), "acknowledged already")
    with _key().catalog(location, cache_dir=tmp_path / "cache") as catalog:
        assert suspect_points(catalog, "shop") == set() and last_clean_point(catalog, "shop") == after
    shop_volume.benign_day(5)
    nxt = run_backup()
    with _key().catalog(location, cache_dir=tmp_path / "cache") as catalog:
        row = list_signals(catalog, restore_point_ids=[nxt], volumes=False)[0]
        assert not row.suspect and attacked in (row.baseline or ())  # the acknowledged point joined the baseline


def test_mass_deletion_of_secrets_is_flagged_by_the_flow(
        prefect_api: str, test_cluster, cluster: Cluster, namespace: str,  # type: ignore[no-untyped-def]
        seaweedfs, tmp_path: Path) -> None:
    names = [f"token-{i}" for i in range(8)]
    for name in names:
        cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                        "stringData": {"token": name}})
        cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
                        "data": {"k": name}})
    location = _location(seaweedfs, namespace)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    first = backup(app="vault", namespaces=[namespace], location=location, encryption_key=_key(), cluster=conn,
                   init=True)
    cluster.delete("v1", "ConfigMap", names[0], namespace)  # an ordinary day: one object goes
    second = backup(app="vault", namespaces=[namespace], location=location, encryption_key=_key(), cluster=conn)
    for name in names[:7]:
        cluster.delete("v1", "Secret", name, namespace)
    attacked = backup(app="vault", namespaces=[namespace], location=location, encryption_key=_key(), cluster=conn)
    with _key().catalog(location, cache_dir=tmp_path / "cache") as catalog:
        assert suspect_points(catalog, "vault") == {attacked}
        row = list_signals(catalog, restore_point_ids=[attacked], volumes=False)[0]
        assert row.deleted_by_kind and row.deleted_by_kind.get("Secret") == 7
        assert any("Secret deleted" in r for r in row.reasons), row.reasons
        assert last_clean_point(catalog, "vault") == second != first
    assert len(_events(prefect_api, f"kubekeep.restore-point.{attacked}")) == 1


def test_signals_can_be_turned_off_and_the_threshold_is_per_run(
        prefect_api: str, test_cluster, cluster: Cluster, namespace: str,  # type: ignore[no-untyped-def]
        shop_volume: AppVolume, seaweedfs, tmp_path: Path) -> None:
    from tasks.parameters import SignalOptions

    location = _location(seaweedfs, namespace)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    first = backup(app="shop", namespaces=[namespace], location=location, encryption_key=_key(), cluster=conn,
                   init=True)
    shop_volume.delete(0.6)
    unscored = backup(app="shop", namespaces=[namespace], location=location, encryption_key=_key(), cluster=conn,
                      signals=SignalOptions(enabled=False))
    shop_volume.benign_day(1)
    lenient = backup(app="shop", namespaces=[namespace], location=location, encryption_key=_key(), cluster=conn,
                     signals=SignalOptions(threshold=1000))
    with _key().catalog(location, cache_dir=tmp_path / "cache") as catalog:
        rows = {r.restore_point_id: r for r in list_signals(catalog, app="shop", volumes=False)}
    assert set(rows) == {first, lenient} and unscored not in rows
    assert rows[lenient].threshold == 1000 and not rows[lenient].suspect
