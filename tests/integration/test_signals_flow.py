"""Signals end to end (issue 13): the backup flow scores each point on the real test bed (kube-apiserver,
SeaweedFS S3, Prefect API); a simulated attack is flagged, a Prefect event and the app's artifact say so,
`kubekeep signals` lists and acknowledges it, `kubekeep restore --last-clean` picks the point before it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks.signals_scenarios import AppVolume
from blocks import ClusterConnection, EncryptionKey, LocationProfile
from flows.backup import backup
from kubekeep.catalog import last_clean_point, list_signals, suspect_points
from kubekeep.cluster import Cluster
from kubekeep.testbed import sample_app
from tasks.signals import SUSPECT_EVENT, artifact_key
from tests.plugins.prefect import api_client

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
        with api_client(api) as client:
            response = client.post("/events/filter", json={
                "filter": {"event": {"name": [SUSPECT_EVENT]}, "resource": {"id": [resource_id]}}, "limit": 10})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["events"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(1)


def _artifacts(api: str, key: str) -> list[dict[str, Any]]:
    with api_client(api) as client:
        response = client.post("/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}})
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


@dataclass
class History:
    """One app's backups through the flow: benign days, an encryption attack, a day after it."""

    namespace: str
    location: LocationProfile
    volume: AppVolume
    benign: list[str]
    attacked: str
    after: str
    #: the volume's files as the last benign point holds them
    clean_tree: dict[str, str]
    #: the CLI's environment and --location
    env: dict[str, str]
    loc: str

    def backup(self, test_cluster: Any, **kwargs: Any) -> str:
        return backup(app="shop", namespaces=[self.namespace], location=self.location, encryption_key=_key(),
                      cluster=ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig)),
                      **kwargs)


@pytest.fixture(scope="module")
def history(prefect_api: str, test_cluster, cluster: Cluster, seaweedfs,  # type: ignore[no-untyped-def]
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """Built once for the module's tests (each flow run takes a while on a loaded test bed)."""
    namespace = f"t-signals-flow-{uuid.uuid4().hex[:6]}"
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    sample_app.create(cluster, namespace)
    sample_app.fill_volume(sample_app.volume_path(cluster, namespace, "data-db-0"), seed=namespace)
    volume = AppVolume(sample_app.volume_path(cluster, namespace, "uploads") / "app", seed=5)
    volume.create()
    tmp = tmp_path_factory.mktemp("signals-flow")
    env = {**seaweedfs.cli_environment(), "KUBEKEEP_S3_ADDRESSING_STYLE": "path", "PREFECT_API_URL": prefect_api,
           "KUBECONFIG": str(test_cluster.kubeconfig), "KUBEKEEP_PASSWORD": PASSPHRASE,
           "KUBEKEEP_TEST_CHEAP_KDF": "1", "COLUMNS": "250", "KUBEKEEP_LOG_DIR": str(tmp / "logs")}
    h = History(namespace, _location(seaweedfs, namespace), volume, [], "", "", {}, env,
                f"s3://{seaweedfs.plain_bucket}/signals-{namespace}/")
    h.benign.append(h.backup(test_cluster, init=True))
    for day in range(1, 4):
        volume.benign_day(day)
        h.benign.append(h.backup(test_cluster))
    h.clean_tree = _digests(volume.root)
    assert volume.encrypt(0.30) > 0  # ransomware: 30 % of the files overwritten in place
    h.attacked = h.backup(test_cluster)
    volume.benign_day(4)  # the app keeps running on the encrypted data
    h.after = h.backup(test_cluster)
    yield h
    cluster.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", f"{namespace}-shop-view")
    cluster.delete("v1", "Namespace", namespace)


def test_benign_points_are_clean_and_the_encryption_is_flagged(history: History, tmp_path: Path) -> None:
    with _key().catalog(history.location, cache_dir=tmp_path / "cache") as catalog:
        verdicts = {r.restore_point_id: r for r in list_signals(catalog, app="shop", volumes=False)}
        assert set(verdicts) == {*history.benign, history.attacked, history.after}  # every point scored
        assert not any(verdicts[p].suspect for p in history.benign)
        assert suspect_points(catalog, "shop") == {history.attacked}
        verdict = verdicts[history.attacked]
        assert verdict.suspect and verdict.score >= verdict.threshold == 6
        assert any("high-entropy" in r and f"{history.namespace}/uploads" in r for r in verdict.reasons), \
            verdict.reasons
        assert not verdicts[history.after].suspect  # its own changes look normal ...
        assert last_clean_point(catalog, "shop") == history.benign[-1]  # ... but it is not clean


def test_a_suspect_point_emits_an_event_and_the_apps_artifact(history: History, prefect_api: str) -> None:
    events = _events(prefect_api, f"kubekeep.restore-point.{history.attacked}")
    assert len(events) == 1, events
    event = events[0]
    assert event["payload"]["app"] == "shop" and event["payload"]["score"] >= 6
    assert any(r["prefect.resource.id"] == "kubekeep.app.shop" for r in event["related"])
    assert any(r["prefect.resource.id"].startswith("prefect.flow-run.") for r in event["related"])
    for clean in (*history.benign, history.after):
        assert not _events(prefect_api, f"kubekeep.restore-point.{clean}", timeout=0)
    artifacts = _artifacts(prefect_api, artifact_key("shop"))
    assert any(history.attacked in (a.get("data") or "") for a in artifacts), artifacts


def test_cli_lists_and_shows_the_suspect_point(history: History) -> None:
    env, loc = history.env, history.loc
    listing = _ok(_kubekeep(["signals", "list", "-l", loc, "--app", "shop"], env))
    marks = {p: next(line for line in listing.splitlines() if p in line)
             for p in [*history.benign, history.attacked, history.after]}
    assert "suspect" in marks[history.attacked] and "after-suspect" in marks[history.after]
    assert all(" clean " in marks[p] for p in history.benign)
    assert f"last clean point of shop: {history.benign[-1]}" in listing
    assert history.attacked in _ok(_kubekeep(["signals", "list", "-l", loc, "--suspect"], env))
    points = _ok(_kubekeep(["restore-points", "-l", loc, "--app", "shop"], env))
    assert "SUSPECT" in next(line for line in points.splitlines() if history.attacked in line)
    shown = _ok(_kubekeep(["signals", "show", history.attacked, "-l", loc], env))
    assert "high-entropy" in shown and f"{history.namespace}/uploads" in shown


def test_restore_last_clean_brings_back_the_data_before_the_attack(history: History, tmp_path: Path) -> None:
    target = tmp_path / "restored"
    restored = _ok(_kubekeep(["restore", "-l", history.loc, "--app", "shop", "--last-clean",
                              "--files", f"{history.namespace}/uploads:app", "--target", str(target)], history.env))
    assert restored.strip().endswith(f"from {history.benign[-1]}"), restored
    assert _digests(target / "app") == history.clean_tree  # the data as it was, not encrypted
    usage = _kubekeep(["restore", "-l", history.loc, "--last-clean", "--files", f"{history.namespace}/uploads",
                       "--target", str(target)], history.env)
    assert usage.returncode == 2 and "--last-clean goes with --app" in usage.stderr  # a usage error, as typer's
    assert "Traceback" not in usage.stdout + usage.stderr


def test_ack_clears_the_suspect_point_and_it_joins_the_baseline(history: History, test_cluster,  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path) -> None:
    env, loc = history.env, history.loc
    _one_line_error(_kubekeep(["signals", "ack", history.benign[-1], "-l", loc], env), "is not suspect")
    # the documented name (issue 13); `signals ack` is the same command
    acked = _ok(_kubekeep(["restore-points", "ack", history.attacked, "-l", loc, "--by", "alice", "--reason",
                           "drill"], env))
    assert f"last clean point of shop: {history.after}" in acked
    # the UI's restore-point index shows the acknowledgement at once (not at the next backup)
    with api_client(env["PREFECT_API_URL"]) as client:
        index = client.get("/artifacts/restore-points-shop/latest").json()
    data = index["data"]
    rows = {row["id"]: row for row in (json.loads(data) if isinstance(data, str) else data)}
    assert rows[history.attacked]["suspect"].startswith("acknowledged"), rows[history.attacked]
    _one_line_error(_kubekeep(["signals", "ack", history.attacked, "-l", loc], env), "acknowledged already")
    with _key().catalog(history.location, cache_dir=tmp_path / "cache") as catalog:
        assert suspect_points(catalog, "shop") == set() and last_clean_point(catalog, "shop") == history.after
    history.volume.benign_day(5)
    nxt = history.backup(test_cluster)
    with _key().catalog(history.location, cache_dir=tmp_path / "cache") as catalog:
        row = list_signals(catalog, restore_point_ids=[nxt], volumes=False)[0]
        assert not row.suspect and history.attacked in (row.baseline or ())  # the acknowledged point joined it


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
