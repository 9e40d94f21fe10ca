"""Pure parts of a verification: the isolation chain, stages and RTO, the verdict, HTTP client output,
sandbox names and when a sandbox counts as abandoned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubekeep.catalog import VerificationResult
from kubekeep.cluster import ExecResult
from kubekeep.manifest import ObjectRef
from kubekeep.restore import PlanOptions, TransformChain, plan_restore
from kubekeep.restore.report import PhaseReport
from kubekeep.testbed import sample_app
from kubekeep.verify import (
    CheckResult,
    CheckType,
    IsolationOptions,
    Owner,
    Sandbox,
    SandboxError,
    SandboxState,
    Stage,
    StageName,
    Verdict,
    decide,
    expected_objects,
    isolation_chain,
    isolation_policy,
    restore_stages,
    rpo_seconds,
    rto_seconds,
)
from kubekeep.verify.checks import HTTP_STATUS_MARK, http_command, http_url, parse_http_output
from kubekeep.verify.models import HttpCheck, HttpClient
from kubekeep.verify.sandbox import sandbox_namespace

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _extra_objects(ns: str) -> list[dict]:  # type: ignore[type-arg]
    return [
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "web", "namespace": ns},
         "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": ns},
         "spec": {"rules": [{"host": "shop.example.com"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "open", "namespace": ns},
         "spec": {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": ns},
         "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb", "namespace": ns},
         "spec": {"type": "LoadBalancer", "externalIPs": ["198.51.100.7"],
                  "ports": [{"port": 443, "nodePort": 31443}]}},
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "nfs-data"},
         "spec": {"nfs": {"server": "nfs.example.com", "path": "/exports/shop"},
                  "claimRef": {"namespace": ns, "name": "static"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "static", "namespace": ns},
         "spec": {"volumeName": "nfs-data", "accessModes": ["ReadWriteOnce"]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "shop-hook"}, "webhooks": []},
    ]


def test_isolation_chain_on_the_sample_app() -> None:
    manifests = sample_app.manifests("shop") + _extra_objects("shop")
    chain = isolation_chain({"shop": "kkv-abc123-shop"}, "abc123", IsolationOptions(max_replicas=1),
                            user=TransformChain.from_dict([{"type": "labels", "selector": {"namespace": "shop"},
                                                            "add": {"seen-source": "shop"}}]))
    result = chain.apply_with_drops(manifests)
    out = {(m["kind"], m["metadata"]["name"]): m for m in result.manifests}
    dropped = {(d.ref.kind, d.ref.name): d.reason for d in result.dropped}
    assert set(dropped) == {("HorizontalPodAutoscaler", "web"), ("Ingress", "web"), ("NetworkPolicy", "open"),
                            ("PersistentVolume", "nfs-data"), ("ValidatingWebhookConfiguration", "shop-hook")}
    assert "policies add up" in dropped[("NetworkPolicy", "open")]
    for m in result.manifests:
        assert m["metadata"]["labels"]["kubekeep.io/sandbox"] == "abc123"
        if m["metadata"].get("namespace"):
            assert m["metadata"]["namespace"] == "kkv-abc123-shop"
    # the user's steps saw the source namespace
    assert out[("Deployment", "web")]["metadata"]["labels"]["seen-source"] == "shop"
    assert out[("Service", "web-public")]["spec"]["type"] == "ClusterIP"
    lb = out[("Service", "lb")]["spec"]
    assert lb["type"] == "ClusterIP" and "externalIPs" not in lb and "nodePort" not in lb["ports"][0]
    assert out[("CronJob", "report")]["spec"]["suspend"] is True
    assert out[("Deployment", "web")]["spec"]["replicas"] == 1
    assert "volumeName" not in out[("PersistentVolumeClaim", "static")]["spec"]
    # the ClusterRoleBinding becomes a copy for the sandbox, labelled (so teardown finds it)
    crb = out[("ClusterRoleBinding", "kkv-abc123-shop-shop-view")]
    assert crb["subjects"][0]["namespace"] == "kkv-abc123-shop"
    assert crb["metadata"]["annotations"]["kubekeep.io/copied-from"] == "shop-shop-view"
    # without the option nothing is capped
    plain = isolation_chain({"shop": "s"}, "abc123", IsolationOptions()).apply(sample_app.manifests("shop"))
    assert next(m for m in plain if m["kind"] == "Deployment")["spec"]["replicas"] == 2
    with pytest.raises(ValueError, match="leave namespace-map out"):
        isolation_chain({"shop": "s"}, "abc123", IsolationOptions(),
                        user=TransformChain.from_dict([{"type": "namespace-map", "map": {"shop": "x"}}]))


def test_isolation_policy_denies_everything_but_the_sandbox_and_dns() -> None:
    policy = isolation_policy("kkv-abc123-shop", "abc123")
    spec = policy["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress", "Egress"]
    same = {"namespaceSelector": {"matchLabels": {"kubekeep.io/sandbox": "abc123"}}}
    assert spec["ingress"] == [{"from": [same]}]
    assert spec["egress"][0] == {"to": [same]} and {p["port"] for p in spec["egress"][1]["ports"]} == {53}
    assert len(isolation_policy("n", "abc123", allow_dns=False)["spec"]["egress"]) == 1


def test_expected_objects_from_a_sandbox_plan() -> None:
    manifests = sample_app.manifests("shop") + _extra_objects("shop")
    chain = isolation_chain({"shop": "kkv-abc123-shop"}, "abc123", IsolationOptions())
    plan = plan_restore(manifests, options=PlanOptions(transforms=chain))
    left_out = [{"group": s.ref.group, "version": s.ref.version, "kind": s.ref.kind, "namespace": s.ref.namespace,
                 "name": s.ref.name, "action": "excluded", "reason": s.reason} for s in plan.skipped]
    left_out.append({"group": "example.com", "version": "v9", "kind": "Gadget", "namespace": "shop", "name": "g",
                     "action": "not-convertible", "reason": "not served"})
    expected = expected_objects([o.ref for p in plan.phases for o in p.objects], left_out,
                                {"shop": "kkv-abc123-shop"})
    assert ObjectRef("example.com", "Gadget", "kkv-abc123-shop", "g", "v9") in expected.refs
    assert expected.left_out["HorizontalPodAutoscaler.autoscaling"] == 1
    assert expected.left_out["PersistentVolume"] == 1
    assert all(r.namespace in ("", "kkv-abc123-shop") for r in expected.refs)


def _phase(name: str, wait: str, start: int, applied: int | None, ready: int | None) -> PhaseReport:
    at = lambda s: None if s is None else T0 + timedelta(seconds=s)  # noqa: E731
    return PhaseReport(name, wait, started_at=at(start), applied_at=at(applied), ready_at=at(ready))


def test_stages_from_restore_phases_and_rto() -> None:
    phases = [_phase("crds", "crds-established", 0, 1, 3), _phase("namespaces", "none", 3, 4, None),
              _phase("volume-data", "verified", 4, 10, 10), _phase("tier-0", "ready", 10, 11, 20),
              _phase("tier-1", "ready", 20, 22, 25)]
    stages = {s.name: s for s in restore_stages(phases)}
    assert stages[StageName.OBJECTS_APPLIED].seconds == 1 + 1 + 1 + 2
    assert stages[StageName.VOLUMES_HYDRATED].seconds == 6
    assert stages[StageName.READY].seconds == 2 + 9 + 3
    assert stages[StageName.READY].finished_at == T0 + timedelta(seconds=25)
    plan = Stage.between(StageName.PLAN, T0 - timedelta(seconds=5), T0)
    checks = Stage.between(StageName.CHECKS, T0 + timedelta(seconds=26), T0 + timedelta(seconds=30))
    assert rto_seconds([plan, *stages.values(), checks]) == 35.0
    assert rto_seconds([plan]) is None
    assert rpo_seconds(T0, T0 - timedelta(hours=1)) == 3600.0 and rpo_seconds(T0, None) is None
    # a stopped restore: the failed volume phase has no ready_at, the phases after it did not run
    stopped = restore_stages([_phase("namespaces", "none", 0, 1, None), _phase("volume-data", "verified", 1, 4, None)])
    assert [(s.name, s.seconds) for s in stopped] == [(StageName.OBJECTS_APPLIED, 1.0),
                                                       (StageName.VOLUMES_HYDRATED, 3.0)]


def _check(name: str, passed: bool, reason: str = "") -> CheckResult:
    return CheckResult(name=name, type=CheckType.EXEC, passed=passed, reason=reason or ("ok" if passed else "bad"),
                       started_at=T0, duration_seconds=1.5)


def test_decide_and_verdict_round_trip() -> None:
    assert decide([_check("a", True)]) == (VerificationResult.PASSED, None)
    result, reason = decide([_check("a", True), _check("db", False, "exit code 2"), _check("web", False, "503")])
    assert result is VerificationResult.FAILED and reason == "db: exit code 2; web: 503"
    assert decide([]) == (VerificationResult.FAILED, "no check ran")
    assert decide([_check("a", True)], error="sandbox cluster unreachable") == (
        VerificationResult.ERROR, "sandbox cluster unreachable")
    verdict = Verdict(id="v-1", restore_point_id="rp-1", app="shop", started_at=T0,
                      finished_at=T0 + timedelta(minutes=2), result=result, reason=reason,
                      checks=[_check("a", True), _check("db", False, "exit | code 2")],
                      stages=[Stage.between(StageName.PLAN, T0, T0 + timedelta(seconds=3))], rto_seconds=42.0,
                      rpo_seconds=3600.0, point_finished_at=T0 - timedelta(hours=1), sandbox_cluster="testbed",
                      sandbox_namespaces=["kkv-1-shop"], teardown="complete")
    record = verdict.to_record()
    assert record.result == "failed" and record.checks[1]["name"] == "db" and record.stages[0]["name"] == "plan"
    assert Verdict.from_record(record) == verdict
    assert Verdict.model_validate_json(verdict.model_dump_json()) == verdict
    text = verdict.markdown()
    assert "**FAILED**" in text and "exit \\| code 2" in text and "RTO 42.0 s" in text
    assert [r["result"] for r in verdict.table_rows()] == ["passed", "FAILED"]


def test_http_client_commands_and_output() -> None:
    check = HttpCheck(name="home", pod_selector="app=web", service="web", port=8080, path="/healthz?x=1")
    url = http_url(check, "kkv-1-shop")
    assert url == "http://web.kkv-1-shop.svc:8080/healthz?x=1"
    assert http_command(HttpClient.CURL, url, 9.7, False)[-1] == url
    assert "-k" in http_command(HttpClient.CURL, url, 5, True)
    assert "--no-check-certificate" in http_command(HttpClient.WGET, url, 5, True)
    curl = ExecResult(0, f"<h1>Shop</h1>\n{HTTP_STATUS_MARK}200\n".encode(), b"")
    assert parse_http_output(HttpClient.CURL, curl) == (200, "<h1>Shop</h1>", "")
    refused = ExecResult(7, f"\n{HTTP_STATUS_MARK}000\n".encode(), b"curl: (7) Failed to connect")
    assert parse_http_output(HttpClient.CURL, refused) == (None, "", "curl: (7) Failed to connect")
    wget = ExecResult(1, b"", b"  HTTP/1.1 301 Moved\n  HTTP/1.1 503 Service Unavailable\nwget: server returned error")
    assert parse_http_output(HttpClient.WGET, wget)[0] == 503
    python = ExecResult(0, f"ok\n{HTTP_STATUS_MARK}204\n".encode(), b"")
    assert parse_http_output(HttpClient.PYTHON3, python) == (204, "ok", "")
    nothing = ExecResult(None, b"", b"", failure="stream lost")
    assert parse_http_output(HttpClient.PYTHON3, nothing) == (None, "", "failed: stream lost")


def test_sandbox_names_and_ids() -> None:
    assert sandbox_namespace("abc123", "shop") == "kkv-abc123-shop"
    long = sandbox_namespace("abc123", "a" * 63)
    assert len(long) == 63 and long.startswith("kkv-abc123-aaa")
    assert sandbox_namespace("abc123", "a" * 60 + "xyz") != sandbox_namespace("abc123", "a" * 60 + "xyw")
    box = Sandbox.plan(["web", "db", "db"], "rp-1", run_id="abc123", now=T0, lifetime=timedelta(hours=1))
    assert box.namespaces == {"db": "kkv-abc123-db", "web": "kkv-abc123-web"} and box.primary == "kkv-abc123-db"
    manifest = box.namespace_manifest("web")["metadata"]
    assert manifest["labels"] == {"kubekeep.io/sandbox": "abc123"}
    assert manifest["annotations"]["kubekeep.io/sandbox-expires"] == (T0 + timedelta(hours=1)).isoformat()
    assert Owner.from_json(manifest["annotations"]["kubekeep.io/sandbox-owner"]) == box.owner
    assert len(Sandbox.plan(["x"], "rp").run_id) == 10
    with pytest.raises(SandboxError, match="run id"):
        Sandbox.plan(["x"], "rp", run_id="Not-OK")
    with pytest.raises(SandboxError, match="no namespace"):
        Sandbox.plan([], "rp")


def test_owner_liveness_on_this_host() -> None:
    me = Owner.current(run="flow-1")
    assert me.alive() is True
    assert Owner(me.host, me.pid, "1", "").alive() is False, "a reused pid (other start time) is not the owner"
    assert Owner("another-host", me.pid, me.started).alive() is None
    assert Owner.from_json("not json") is None


def _state(**kw) -> SandboxState:  # type: ignore[no-untyped-def]
    base = dict(run_id="abc123", namespaces=("kkv-abc123-shop",), created_at=T0, expires_at=T0 + timedelta(hours=6),
                owner=Owner("other", 1, "1"), restore_point_id="rp", renewed_at=T0, lease_seconds=60,
                terminating=False)
    base.update(kw)
    return SandboxState(**base)  # type: ignore[arg-type]


def test_when_a_sandbox_is_abandoned() -> None:
    unknown = lambda owner: None  # noqa: E731 - another host: liveness unknown
    soon = T0 + timedelta(seconds=30)
    assert _state().abandoned(soon, owner_alive=unknown) is None
    assert "heartbeat stopped" in str(_state().abandoned(T0 + timedelta(seconds=61), owner_alive=unknown))
    assert "lifetime ended" in str(_state().abandoned(T0 + timedelta(hours=7), owner_alive=lambda o: True))
    assert "is gone" in str(_state().abandoned(soon, owner_alive=lambda o: False))
    no_lease = _state(renewed_at=None, lease_seconds=None)
    assert no_lease.abandoned(soon, owner_alive=unknown) is None
    assert "no heartbeat" in str(no_lease.abandoned(T0 + timedelta(seconds=61), owner_alive=unknown))
    assert "no owner" in str(_state(renewed_at=None, lease_seconds=None, expires_at=None, owner=None,
                                    created_at=None).abandoned(soon, owner_alive=unknown))


def test_expected_objects_from_a_restore_report() -> None:
    from kubekeep.restore.report import Action, ObjectOutcome, RestoreReport
    from kubekeep.verify import expected_from_report

    report = RestoreReport(dry_run=False, outcomes=[
        ObjectOutcome("autoscaling", "v2", "HorizontalPodAutoscaler", "shop", "web", Action.EXCLUDED,
                      "left out by transforms[2] (drop): no autoscaling"),
        ObjectOutcome("example.com", "v9", "Gadget", "shop", "g", Action.NOT_CONVERTIBLE, "not served"),
        ObjectOutcome("", "v1", "ConfigMap", "kkv-1-shop", "cfg", Action.CREATED),
        ObjectOutcome("", "v1", "ConfigMap", "kkv-1-shop", "kube-root-ca.crt", Action.SKIPPED, "exists"),
        ObjectOutcome("apps", "v1", "Deployment", "kkv-1-shop", "web", Action.NOT_ATTEMPTED, "restore stopped"),
    ])
    expected = expected_from_report(report, {"shop": "kkv-1-shop"})
    assert expected.refs == [ObjectRef("", "ConfigMap", "kkv-1-shop", "cfg", "v1"),
                             ObjectRef("", "ConfigMap", "kkv-1-shop", "kube-root-ca.crt", "v1"),
                             ObjectRef("apps", "Deployment", "kkv-1-shop", "web", "v1"),
                             ObjectRef("example.com", "Gadget", "kkv-1-shop", "g", "v9")]
    assert expected.left_out == {"HorizontalPodAutoscaler.autoscaling": 1}


def test_assemble_a_verdict() -> None:
    stages = [Stage.between(StageName.SANDBOX, T0, T0 + timedelta(seconds=4)),
              Stage.between(StageName.PLAN, T0 + timedelta(seconds=4), T0 + timedelta(seconds=6)),
              Stage.between(StageName.CHECKS, T0 + timedelta(seconds=40), T0 + timedelta(seconds=50)),
              Stage.between(StageName.TEARDOWN, T0 + timedelta(seconds=50), T0 + timedelta(seconds=60))]
    common = dict(id="v-1", restore_point_id="rp", app="shop", started_at=T0, finished_at=T0 + timedelta(minutes=1),
                  stages=stages, sandbox_cluster="c", sandbox_namespaces=["kkv-1-shop"], teardown="complete",
                  point_finished_at=T0 - timedelta(hours=1), previous_finished_at=T0 - timedelta(hours=25))
    passed = Verdict.assemble(checks=[_check("a", True)], **common)  # type: ignore[arg-type]
    assert passed.passed and passed.rto_seconds == 46.0 and passed.rpo_seconds == 24 * 3600.0
    failed = Verdict.assemble(checks=[_check("a", False, "exit code 1")], **common)  # type: ignore[arg-type]
    assert failed.result is VerificationResult.FAILED and failed.reason == "a: exit code 1"
    error = Verdict.assemble(checks=[], error="sandbox cluster unreachable", **common)  # type: ignore[arg-type]
    assert error.result is VerificationResult.ERROR and error.rto_seconds is None


def test_checks_stage_spans_the_checks_and_declarations_fail_loudly() -> None:
    from datetime import UTC, datetime, timedelta

    from kubekeep.verify import CheckResult, CheckType, checks_stage, declarations_check

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    results = [CheckResult(name="a", type=CheckType.EXEC, passed=True, started_at=t0, duration_seconds=2),
               CheckResult(name="b", type=CheckType.HTTP, passed=True, started_at=t0 + timedelta(seconds=5),
                           duration_seconds=1.5),
               CheckResult(name="c", type=CheckType.EXEC, passed=False, attempts=0)]  # never started
    stage = checks_stage(results)
    assert stage is not None and stage.started_at == t0 and stage.seconds == 6.5
    assert checks_stage([results[2]]) is None
    # the restore and volume-data checks carry the restore's own times (already in the restore stages)
    restore = CheckResult(name="restore", type=CheckType.RESTORE, passed=True, started_at=t0 - timedelta(seconds=30),
                          duration_seconds=29)
    data = CheckResult(name="volume-data", type=CheckType.VOLUME_DATA, passed=True,
                       started_at=t0 - timedelta(seconds=20), duration_seconds=5)
    assert checks_stage([restore, data, *results]) == stage
    assert declarations_check([]) is None
    errors = [f"Deployment shop/web: annotation verify.kubekeep.io/check.x{i}: bad" for i in range(5)]
    check = declarations_check(errors)
    assert check is not None and not check.passed and check.type is CheckType.DECLARATIONS
    assert check.reason.startswith("5 check annotation(s) are not valid checks: ") and "and 2 more" in check.reason
    assert "check.x4" in check.output_tail


def test_sandbox_run_ids_and_artifact_keys() -> None:
    from flows.verify import artifact_key, sandbox_run_id
    from kubekeep.verify import Sandbox

    run = sandbox_run_id("0b5c43f2-8a1e-4c4e-9d1a-2f0c3e4d5a6b")
    assert run == "0b5c43f28a" and Sandbox.plan(["shop"], "rp", run_id=run).run_id == run
    assert sandbox_run_id(None) is None
    assert artifact_key("verification", "Shop_EU.prod") == "verification-shop-eu-prod"
    assert artifact_key("verification", "__") == "verification-unnamed"
