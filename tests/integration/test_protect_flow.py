"""The protect flow end to end: a ProtectionPolicy block saved in a real Prefect API, a real control plane,
a real location. A namespace created after the policy was saved is protected by the next run with no
edit; an excluded one is listed as unprotected; retention of the policy runs after the backups; the
protection table artifact says all of it. The block validates on save."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from blocks import ClusterConnection, EncryptionKey, LocationProfile, ProtectionPolicy
from flows.protect import protect
from kubekeep.catalog import list_restore_points, list_verifications, newest_verified_point
from kubekeep.cluster import Cluster
from kubekeep.policy import PolicyError


def _make_namespace(cluster: Cluster, name: str, created: list[str]) -> None:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    created.append(name)
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": name, "name": "settings"},
                    "data": {"owner": name}})


def _table(key: str) -> list[dict[str, str]]:
    from prefect.artifacts import Artifact

    artifact = Artifact.get(key)
    assert artifact is not None, key
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data  # type: ignore[no-any-return]


def test_a_namespace_created_after_the_policy_is_protected_by_the_next_run(
        prefect_api: str, test_cluster, cluster: Cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prefix = f"pp-{uuid.uuid4().hex[:6]}"
    LocationProfile(kind="filesystem", path=str(tmp_path / "location")).save(f"{prefix}-loc")
    EncryptionKey(passphrase="protect-pass", cheap_kdf=True).save(f"{prefix}-key")
    ProtectionPolicy(name=prefix, apps={"namespaces": [f"{prefix}-*"], "exclude": [f"{prefix}-scratch"]},
                     schedule={"cron": "0 2 * * *", "timezone": "Europe/Berlin"}, retention={"keep_last": 1},
                     location=f"{prefix}-loc", verify={"frequency": "never"}).save(prefix)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    created: list[str] = []
    try:
        _make_namespace(cluster, f"{prefix}-shop", created)
        _make_namespace(cluster, f"{prefix}-scratch", created)
        first = protect(policy=prefix, encryption_key=f"{prefix}-key", cluster=conn, init=True)
        assert set(first.backups) == {f"{prefix}-shop"}
        assert first.backups[f"{prefix}-shop"].status == "backed up"
        assert f"{prefix}-scratch" in first.unprotected

        # created after the policy was saved, and after its first run: no edit to the policy
        _make_namespace(cluster, f"{prefix}-billing", created)
        second = protect(policy=prefix, encryption_key=f"{prefix}-key", cluster=conn)
        assert set(second.backups) == {f"{prefix}-shop", f"{prefix}-billing"}
        assert all(o.status == "backed up" for o in second.backups.values()), second.backups

        # retention of the policy ran after the backups: keep_last 1 dropped the first point of shop
        assert second.retention is not None and second.retention.expiry is not None
        assert second.retention.expiry.deleted == [first.backups[f"{prefix}-shop"].restore_point]
        location = LocationProfile.load(f"{prefix}-loc")
        with EncryptionKey.load(f"{prefix}-key").catalog(location, cache_dir=tmp_path / "cache") as catalog:
            points = list_restore_points(catalog, statuses=None)
        assert sorted(p.id for p in points) == sorted(o.restore_point for o in second.backups.values())
        assert {p.policy for p in points} == {prefix}

        rows = {row["app"]: row for row in _table(f"protection-{prefix}")}
        billing = rows[f"{prefix}-billing"]
        assert billing["state"] == "protected" and billing["policies"] == prefix
        assert billing["last point"] == second.backups[f"{prefix}-billing"].restore_point
        assert billing["last point status"] == "succeeded" and billing["this run"] == "backed up"
        assert billing["next run"].endswith(("+01:00", "+02:00"))  # the policy's timezone
        assert rows[f"{prefix}-scratch"]["state"] == "unprotected"
    finally:
        for name in created:
            cluster.delete("v1", "Namespace", name)


def test_the_policy_block_validates_on_save_and_loads_back(prefect_api: str) -> None:
    name = f"pv-{uuid.uuid4().hex[:6]}"
    # not all: true: policies saved in the session's Prefect API decide which apps other tests see unprotected
    good = ProtectionPolicy(name=name, apps={"namespaces": [f"{name}-*"], "exclude": [f"{name}-tmp"]},
                            schedule={"cron": "30 1 * * *", "timezone": "America/New_York"},
                            retention={"keep_daily": 7, "keep_monthly": "unlimited", "keep_within": "2w"},
                            location="primary", dr_copy={"location": "dr", "retention": {"keep_monthly": 24}})
    good.save(name)
    loaded = ProtectionPolicy.load(name)
    assert loaded.spec() == good.spec()
    assert loaded.retention.keep_monthly == -1 and loaded.dr_retention().keep_monthly == 24  # type: ignore[union-attr]

    with pytest.raises(ValueError, match="cron expression"):
        ProtectionPolicy(name=name, apps={"all": True}, schedule={"cron": "0 25 * * *"}, retention={"keep_last": 1},
                         location="primary")
    # built without validation (as a careless caller might): save refuses it with one line, saves nothing
    bad = ProtectionPolicy.model_construct(**{**good.spec().model_dump(), "name": f"{name}-bad",
                                              "retention": {"keep_daily": -5}})
    with pytest.raises(PolicyError, match="retention.keep_daily") as raised:
        bad.save(f"{name}-bad")
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError):
        ProtectionPolicy.load(f"{name}-bad")


def test_a_policy_with_a_dr_copy_copies_each_new_point_and_applies_its_own_retention_at_the_second_site(
        prefect_api: str, test_cluster, cluster: Cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prefix = f"pd-{uuid.uuid4().hex[:6]}"
    LocationProfile(kind="filesystem", path=str(tmp_path / "site-a")).save(f"{prefix}-a")
    LocationProfile(kind="filesystem", path=str(tmp_path / "site-b")).save(f"{prefix}-b")
    EncryptionKey(passphrase="protect-pass", cheap_kdf=True).save(f"{prefix}-key")
    ProtectionPolicy(name=prefix, apps={"namespaces": [f"{prefix}-*"]}, schedule={"cron": "0 2 * * *"},
                     retention={"keep_last": 3}, location=f"{prefix}-a", verify={"frequency": "never"},
                     dr_copy={"location": f"{prefix}-b", "mode": "independent",
                              "retention": {"keep_last": 1}}).save(prefix)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    key = EncryptionKey.load(f"{prefix}-key")

    def ids(site: str) -> list[str]:
        with key.catalog(LocationProfile.load(f"{prefix}-{site}"), cache_dir=tmp_path / f"c-{uuid.uuid4().hex}") as c:
            return sorted(p.id for p in list_restore_points(c, statuses=None))

    created: list[str] = []
    try:
        _make_namespace(cluster, f"{prefix}-shop", created)
        runs = [protect(policy=prefix, encryption_key=f"{prefix}-key", cluster=conn, init=n == 0) for n in range(2)]
        first, second = (run.backups[f"{prefix}-shop"] for run in runs)
        assert first.status == second.status == "backed up", [run.backups for run in runs]
        assert all(run.skipped == [] for run in runs)  # nothing the policy asks for was left out
        # the second site keeps its own retention (keep_last 1), the source its own (keep_last 3)
        assert ids("b") == [second.restore_point]
        assert ids("a") == sorted([first.restore_point, second.restore_point])
        dr = runs[1].dr_retention
        assert dr is not None and dr.expiry is not None and dr.expiry.deleted == [first.restore_point]
        assert runs[1].retention is not None and runs[1].retention.expiry is not None
        assert runs[1].retention.expiry.deleted == []
    finally:
        for name in created:
            cluster.delete("v1", "Namespace", name)


def test_protect_verifies_an_app_whose_newest_verified_point_is_older_than_the_policy_frequency(
        prefect_api: str, test_cluster, cluster: Cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prefix = f"pv-{uuid.uuid4().hex[:6]}"
    LocationProfile(kind="filesystem", path=str(tmp_path / "location")).save(f"{prefix}-loc")
    EncryptionKey(passphrase="protect-pass", cheap_kdf=True).save(f"{prefix}-key")
    ProtectionPolicy(name=prefix, apps={"namespaces": [f"{prefix}-*"]}, schedule={"cron": "0 2 * * *"},
                     retention={"keep_last": 2}, location=f"{prefix}-loc", verify={"frequency": "daily"}).save(prefix)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    app = f"{prefix}-shop"
    created: list[str] = []
    try:
        _make_namespace(cluster, app, created)
        # no point of the app is verified yet: due; the verify-latest flow verifies the new point
        first = protect(policy=prefix, encryption_key=f"{prefix}-key", cluster=conn, init=True)
        assert first.backups[app].status == "backed up", first.backups
        assert first.verifications == {app: "passed"}
        # the next run, minutes later: the newest verified point is younger than a day, nothing is verified
        second = protect(policy=prefix, encryption_key=f"{prefix}-key", cluster=conn)
        assert second.backups[app].status == "backed up" and second.verifications == {}
        location = LocationProfile.load(f"{prefix}-loc")
        with EncryptionKey.load(f"{prefix}-key").catalog(location, cache_dir=tmp_path / "cache") as catalog:
            assert newest_verified_point(catalog, app) == first.backups[app].restore_point
            assert [v.restore_point_id for v in list_verifications(catalog, app=app)] == [
                first.backups[app].restore_point]
    finally:
        for name in created:
            cluster.delete("v1", "Namespace", name)


def test_a_protect_run_whose_retention_drops_more_than_the_share_pauses_refused_then_approved(
        prefect_api: str, test_cluster, cluster: Cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    from kubekeep.catalog import Catalog
    from kubekeep.repo.crypto import KdfParams
    from kubekeep.repo.repository import Repository
    from kubekeep.repo.storage import FilesystemStorage
    from tests.integration.retention_points import CHUNKER, PACK_SIZE, write_point
    from tests.integration.test_retention_flow import _in_thread, _paused_run

    prefix = f"pa-{uuid.uuid4().hex[:6]}"
    app = f"{prefix}-shop"
    path = tmp_path / "location"
    # two older points the policy made: a run's keep_last 1 drops 2 of 3 points, then 3 of 4 (over 50 %)
    repo = Repository.init(FilesystemStorage(path, create=True), passphrase="protect-pass", kdf=KdfParams.cheap(),
                           chunker=CHUNKER, pack_size=PACK_SIZE)
    catalog = Catalog(repo.storage, cache_dir=tmp_path / "seed-cache", codec=repo.catalog_codec())
    for n in range(2):
        write_point(repo, catalog, tmp_path, app=app, started=datetime(2026, 3, 1 + n, 2, tzinfo=UTC), seed=n,
                    policy=prefix)
    repo.close()
    LocationProfile(kind="filesystem", path=str(path)).save(f"{prefix}-loc")
    EncryptionKey(passphrase="protect-pass", cheap_kdf=True).save(f"{prefix}-key")
    ProtectionPolicy(name=prefix, apps={"namespaces": [f"{prefix}-*"]}, schedule={"cron": "0 2 * * *"},
                     retention={"keep_last": 1}, location=f"{prefix}-loc", verify={"frequency": "never"}).save(prefix)
    conn = ClusterConnection(name="testbed", kubeconfig_path=str(test_cluster.kubeconfig))
    location, key = LocationProfile.load(f"{prefix}-loc"), EncryptionKey.load(f"{prefix}-key")

    def ids() -> list[str]:
        with key.catalog(location, cache_dir=tmp_path / f"c-{uuid.uuid4().hex}") as cat:
            return sorted(p.id for p in list_restore_points(cat, statuses=None))

    created: list[str] = []
    try:
        _make_namespace(cluster, app, created)
        before = ids()
        outcomes = []
        for approve in (False, True):
            thread, result = _in_thread(protect, policy=prefix, encryption_key=f"{prefix}-key", cluster=conn)
            paused = _paused_run(f"retention {prefix}", thread, result)
            with get_client(sync_client=True) as client:  # the retention subflow is Paused in the API
                assert client.read_flow_run(paused.id).state.type == StateType.PAUSED
            assert len(ids()) == len(before) + 1  # the new point is written; nothing is deleted while it waits
            resume_flow_run(paused.id, run_input={"approve": approve, "reason": "checked" if approve else "no"})
            thread.join(timeout=300)
            assert not thread.is_alive() and "error" not in result, result.get("error")
            outcomes.append(result["outcome"])
            if not approve:  # refused: nothing dropped
                assert outcomes[0].retention.approval == "refused" and outcomes[0].retention.expiry is None
                assert ids() == sorted([*before, outcomes[0].backups[app].restore_point])
                before = ids()
        approved = outcomes[1]
        assert approved.retention.approval == "approved in the UI"
        assert ids() == [approved.backups[app].restore_point]  # keep_last 1: every older point went
        assert sorted(approved.retention.expiry.deleted) == before
    finally:
        for name in created:
            cluster.delete("v1", "Namespace", name)
