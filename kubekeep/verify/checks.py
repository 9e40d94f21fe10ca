"""The checks of a verification, each a function from what the sandbox holds to a :class:`CheckResult`.

Built in: the restore itself (its report), every object of the restore point present (counted by
kind), workloads Ready, volume data verified file by file (the restore's own verification,
:mod:`kubekeep.restore.volume_data`, done before any workload started on the data). User checks:
``exec`` (a command in a pod) and ``http`` (a GET by a client exec'd in a pod, so Service names
resolve the way the app's pods resolve them). User checks repeat until one attempt passes or their
timeout ends; every check records its duration, attempts and output tail.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubekeep.cluster import ApiError, Cluster, ExecResult, exec_in_pod
from kubekeep.manifest import ObjectRef
from kubekeep.restore.readiness import ReadinessError, readiness_of, wait_until_ready
from kubekeep.restore.report import RestoreReport, VolumeOutcome, VolumeStatus

from .models import (
    BuiltinChecks,
    CheckResult,
    CheckType,
    ExecCheck,
    HttpCheck,
    HttpClient,
    VerificationSpecError,
    tail,
)

Clock = Callable[[], float]

#: kinds whose objects run pods: the workloads-ready check waits for these
WORKLOAD_KINDS = frozenset({("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"),
                            ("apps", "ReplicaSet"), ("", "ReplicationController"), ("batch", "Job"), ("", "Pod")})
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
HTTP_STATUS_MARK = "__kubekeep_http_status__="
_MAX_LISTED = 10
#: how long ``workloads-ready`` waits after a restore that failed (see run_builtin_checks)
FAILED_RESTORE_READY_SECONDS = 5.0


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------ restore


def restore_check(report: RestoreReport, *, name: str = "restore") -> CheckResult:
    """Whether the sandbox restore did everything it was asked (its report's own verdict)."""
    seconds = ((report.finished_at or _now()) - report.started_at).total_seconds()
    counts = ", ".join(f"{n} {a}" for a, n in report.counts.items())
    if not report.failed:
        return CheckResult(name=name, type=CheckType.RESTORE, passed=True, reason=f"restore completed ({counts})",
                           started_at=report.started_at, duration_seconds=max(seconds, 0.0))
    summary = report.failure_summary(limit=10)
    first = summary.splitlines()
    reason = "; ".join(line.strip() for line in first[:4]) + ("; ..." if len(first) > 4 else "")
    return CheckResult(name=name, type=CheckType.RESTORE, passed=False, reason=reason, started_at=report.started_at,
                       duration_seconds=max(seconds, 0.0), output_tail=tail(summary))


# ----------------------------------------------------------- objects present


@dataclass
class ExpectedObjects:
    """What the sandbox must hold: every object of the restore point where the restore puts it, except
    those left out on purpose (owned by a restored owner, dropped by the isolation), which are listed."""

    refs: list[ObjectRef] = field(default_factory=list)
    #: group-kind -> how many were left out on purpose, and why (the first reason seen)
    left_out: dict[str, int] = field(default_factory=dict)
    left_out_reasons: dict[str, str] = field(default_factory=dict)

    def add_left_out(self, ref: ObjectRef, reason: str) -> None:
        self.left_out[ref.group_kind] = self.left_out.get(ref.group_kind, 0) + 1
        self.left_out_reasons.setdefault(ref.group_kind, reason)


def expected_objects(planned: Iterable[ObjectRef], left_out: Iterable[Mapping[str, Any]],
                     namespace_map: Mapping[str, str]) -> ExpectedObjects:
    """The planned objects (target references) plus the objects the plan could not place (not
    convertible: expected, so they count as missing), minus those left out on purpose (``excluded``).

    ``left_out`` are the plan's outcome rows (``ObjectOutcome.to_dict()``) of the objects it left out,
    with their source namespaces.
    """
    out = ExpectedObjects(refs=list(dict.fromkeys(planned)))
    for row in left_out:
        ref = ObjectRef(str(row["group"]), str(row["kind"]), str(row.get("namespace") or ""), str(row["name"]),
                        str(row.get("version") or ""))
        if row.get("action") == "excluded":
            out.add_left_out(ref, str(row.get("reason") or ""))
        else:
            out.refs.append(ObjectRef(ref.group, ref.kind, namespace_map.get(ref.namespace, ref.namespace), ref.name,
                                      ref.version))
    return out


def expected_from_report(report: RestoreReport, namespace_map: Mapping[str, str]) -> ExpectedObjects:
    """:func:`expected_objects` from a restore report alone: its outcomes name every object of the restore
    point (those the plan left out first, with their source namespaces; the others where the restore put
    them)."""
    left_out = {"excluded", "not-convertible"}
    planned = [o.ref for o in report.outcomes if o.action.value not in left_out]
    return expected_objects(planned, [o.to_dict() for o in report.outcomes if o.action.value in left_out],
                            namespace_map)


def _names_present(cluster: Cluster, group: str, version: str, kind: str, namespace: str,
                   names: Sequence[str]) -> tuple[set[str], str | None]:
    """Which of ``names`` exist; and why none could be looked at (kind not served)."""
    api_version = f"{group}/{version}" if group else version
    try:
        resource = cluster.resource_for(api_version, kind)
    except ApiError:
        served = cluster.served_versions(group, kind)
        if not served:
            return set(), f"{kind}{'.' + group if group else ''} is not served by the sandbox cluster"
        resource = cluster.resource_for(f"{group}/{served[0]}" if group else served[0], kind)
    if resource.namespaced:
        found = {str(o["metadata"]["name"]) for o in cluster.list_pages(resource, namespace=namespace)}
        return found & set(names), None
    return {n for n in names if cluster.get_or_none(resource.api_version, kind, n) is not None}, None


def objects_present(cluster: Cluster, expected: ExpectedObjects, *, name: str = "objects-present") -> CheckResult:
    """Every expected object exists on the sandbox cluster; the result counts them by kind."""
    started, t0 = _now(), time.monotonic()
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for ref in expected.refs:
        groups.setdefault((ref.group, ref.version, ref.kind, ref.namespace), []).append(ref.name)
    want: Counter[str] = Counter()
    have: Counter[str] = Counter()
    missing: list[str] = []
    problems: list[str] = []
    try:
        for (group, version, kind, namespace), names in sorted(groups.items()):
            group_kind = f"{kind}.{group}" if group else kind
            want[group_kind] += len(names)
            found, why = _names_present(cluster, group, version, kind, namespace, names)
            if why:
                problems.append(why)
            have[group_kind] += len(found)
            missing += [f"{group_kind} {namespace + '/' if namespace else ''}{n}" for n in names if n not in found]
    except ApiError as exc:
        return CheckResult(name=name, type=CheckType.OBJECTS_PRESENT, passed=False, started_at=started,
                           duration_seconds=time.monotonic() - t0, reason=f"could not list the sandbox: {exc}")
    lines = [f"{kind}: {have[kind]}/{want[kind]}" for kind in sorted(want)]
    lines += [f"{kind}: {n} left out on purpose ({expected.left_out_reasons.get(kind, '')})"
              for kind, n in sorted(expected.left_out.items())]
    total, present = sum(want.values()), sum(have.values())
    if missing:
        short = [f"{k} {have[k]} of {want[k]}" for k in sorted(want) if have[k] < want[k]]
        listed = "; ".join(missing[:_MAX_LISTED]) + (f"; and {len(missing) - _MAX_LISTED} more"
                                                     if len(missing) > _MAX_LISTED else "")
        reason = f"{len(missing)} of {total} objects missing ({', '.join(short)}): {listed}"
        if problems:
            reason += " (" + "; ".join(sorted(set(problems))) + ")"
        passed = False
    else:
        left = sum(expected.left_out.values())
        reason = f"{present} objects of {len(want)} kinds present" + (
            f"; {left} left out on purpose" if left else "")
        passed = True
    return CheckResult(name=name, type=CheckType.OBJECTS_PRESENT, passed=passed, reason=reason, started_at=started,
                       duration_seconds=time.monotonic() - t0, output_tail=tail("\n".join(lines + missing)))


# ----------------------------------------------------------- workloads ready


def workloads_ready(cluster: Cluster, refs: Iterable[ObjectRef], *, timeout: float,
                    name: str = "workloads-ready") -> CheckResult:
    """Every workload among ``refs`` is Ready now (kubekeep.restore.readiness rules), waiting up to
    ``timeout`` for those that are not yet."""
    started, t0 = _now(), time.monotonic()
    workloads = [r for r in dict.fromkeys(refs) if (r.group, r.kind) in WORKLOAD_KINDS]
    if not workloads:
        return CheckResult(name=name, type=CheckType.WORKLOADS_READY, passed=True, reason="no workloads",
                           started_at=started)
    try:
        wait_until_ready(cluster, workloads, timeout=timeout)
    except ReadinessError as exc:
        details = [f"{ref}: {state.detail}" for ref, state in exc.not_ready.items()]
        return CheckResult(name=name, type=CheckType.WORKLOADS_READY, passed=False, started_at=started,
                           duration_seconds=time.monotonic() - t0, reason=str(exc),
                           output_tail=tail("\n".join(details)))
    except ApiError as exc:
        return CheckResult(name=name, type=CheckType.WORKLOADS_READY, passed=False, started_at=started,
                           duration_seconds=time.monotonic() - t0, reason=f"could not read the workloads: {exc}")
    states = []
    for ref in workloads:
        api_version = f"{ref.group}/{ref.version}" if ref.group else ref.version
        obj = cluster.get_or_none(api_version, ref.kind, ref.name, ref.namespace or None)
        states.append(f"{ref}: {readiness_of(obj).detail}")
    return CheckResult(name=name, type=CheckType.WORKLOADS_READY, passed=True, started_at=started,
                       duration_seconds=time.monotonic() - t0, reason=f"{len(workloads)} workload(s) Ready",
                       output_tail=tail("\n".join(states)))


# --------------------------------------------------------------- volume data


def volume_data(volumes: Sequence[VolumeOutcome], expected: Iterable[tuple[str, str]], *,
                started_at: datetime | None = None, seconds: float = 0.0, name: str = "volume-data") -> CheckResult:
    """Every claim whose data the restore point holds was restored and verified file by file.

    ``volumes`` are the restore's outcomes (kubekeep.restore.volume_data re-read every restored file
    and compared its chunks with the snapshot before any workload started); ``expected`` are the
    (sandbox namespace, claim) pairs that must be among them.
    """
    by_claim = {(v.namespace, v.name): v for v in volumes}
    problems = []
    lines = []
    for namespace, claim in dict.fromkeys(expected):
        outcome = by_claim.get((namespace, claim))
        if outcome is None:
            problems.append(f"PVC {namespace}/{claim}: its data was not restored")
            lines.append(f"{namespace}/{claim}: not restored")
            continue
        lines.append(f"{outcome.pvc}: {outcome.status.value}, {outcome.files} file(s), {outcome.bytes} byte(s)"
                     + (f": {outcome.error}" if outcome.error else ""))
        if outcome.status is not VolumeStatus.VERIFIED:
            problems.append(outcome.why_unusable())
    files = sum(v.files for v in volumes if v.status is VolumeStatus.VERIFIED)
    if problems:
        reason = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        return CheckResult(name=name, type=CheckType.VOLUME_DATA, passed=False, reason=reason, started_at=started_at,
                           duration_seconds=seconds, output_tail=tail("\n".join(lines)))
    count = len(lines)
    reason = f"{count} volume(s) match the snapshot file by file ({files} files)" if count else "no volume data"
    return CheckResult(name=name, type=CheckType.VOLUME_DATA, passed=True, reason=reason, started_at=started_at,
                       duration_seconds=seconds, output_tail=tail("\n".join(lines)))


# ------------------------------------------------------------ all built-ins

#: restore phases that fill volumes (the flow's ``volume-data``; the one-call apply's ``before-workloads``)
VOLUME_PHASES = frozenset({"volume-data", "before-workloads"})


def run_builtin_checks(cluster: Cluster, report: RestoreReport, namespace_map: Mapping[str, str],
                       volumes_with_data: Iterable[tuple[str, str]], builtin: BuiltinChecks) -> list[CheckResult]:
    """The restore check and the built-in checks ``builtin`` switches on, judged from the sandbox restore's
    report and the sandbox cluster. ``volumes_with_data``: (source namespace, claim) of every volume whose
    data the restore point holds."""
    results = [restore_check(report)]
    expected = expected_from_report(report, namespace_map)
    if builtin.objects_present:
        results.append(objects_present(cluster, expected))
    if builtin.workloads_ready:
        # a failed restore already fails the verdict and may have held workloads back (they never come):
        # one short look names what is not Ready instead of waiting the whole timeout for it
        timeout = min(builtin.timeout_seconds, FAILED_RESTORE_READY_SECONDS) if report.failed \
            else builtin.timeout_seconds
        results.append(workloads_ready(cluster, expected.refs, timeout=timeout))
    if builtin.volume_data:
        phase = next((p for p in report.phases if p.name in VOLUME_PHASES), None)
        end = phase and (phase.ready_at or phase.applied_at)
        seconds = (end - phase.started_at).total_seconds() if phase and end and phase.started_at else 0.0
        results.append(volume_data(report.volumes, [(namespace_map.get(ns, ns), claim)
                                                    for ns, claim in volumes_with_data],
                                   started_at=phase.started_at if phase else None, seconds=max(seconds, 0.0)))
    return results


def declarations_check(errors: Sequence[str], *, name: str = "declarations") -> CheckResult | None:
    """A failed check naming each annotation that is not a valid check (None: every declaration is valid)."""
    if not errors:
        return None
    more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
    reason = f"{len(errors)} check annotation(s) are not valid checks: " + "; ".join(errors[:3]) + more
    return CheckResult(name=name, type=CheckType.DECLARATIONS, passed=False, started_at=_now(), attempts=0,
                       reason=reason,
                       output_tail=tail("\n".join(errors)))


# ------------------------------------------------------------- user checks


def check_namespace(check: ExecCheck | HttpCheck, namespace_map: Mapping[str, str]) -> str:
    """The sandbox namespace a user check runs in."""
    if check.namespace is None:
        if len(namespace_map) == 1:
            return next(iter(namespace_map.values()))
        raise VerificationSpecError(f"check {check.name}: give its namespace (the app has namespaces "
                                    f"{', '.join(sorted(namespace_map))})")
    if check.namespace in namespace_map:
        return namespace_map[check.namespace]
    if check.namespace in namespace_map.values():
        return check.namespace
    raise VerificationSpecError(f"check {check.name}: namespace {check.namespace!r} is not one of the app's "
                                f"({', '.join(sorted(namespace_map))})")


def _ready(pod: dict[str, Any]) -> bool:
    return readiness_of(pod).ready and (pod.get("status") or {}).get("phase") == "Running"


def choose_pod(cluster: Cluster, namespace: str, selector: str, container: str | None
               ) -> tuple[str, str] | str:
    """(pod, container) to run in: a Ready pod matching ``selector``, the first by name; or why there is none."""
    pods = sorted(cluster.list_pages(cluster.resource_for("v1", "Pod"), namespace=namespace, label_selector=selector),
                  key=lambda p: p["metadata"]["name"])
    if not pods:
        return f"no pod in {namespace} matches {selector!r}"
    ready = [p for p in pods if _ready(p) and not p["metadata"].get("deletionTimestamp")]
    if not ready:
        return f"none of the {len(pods)} pod(s) matching {selector!r} in {namespace} is Ready"
    pod = ready[0]
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or ()]
    if container is not None:
        if container not in names:
            return f"pod {namespace}/{pod['metadata']['name']} has no container {container!r} (it has {names})"
        return pod["metadata"]["name"], container
    default = ((pod["metadata"].get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION))
    return pod["metadata"]["name"], str(default if default in names else names[0])


_NOT_FOUND_RE = re.compile(r"not found|no such file|executable file|cannot run|permission denied", re.IGNORECASE)


def _client_missing(result: ExecResult) -> bool:
    """The exec'd program does not exist in the container (so ``auto`` tries the next client)."""
    if result.exit_code not in (None, 126, 127):
        return False
    text = (result.failure or "") + result.stderr.decode("utf-8", "replace")[-500:]
    return bool(_NOT_FOUND_RE.search(text))


_PYTHON_CLIENT = (
    "import ssl,sys,urllib.request,urllib.error\n"
    "u,t,k=sys.argv[1],float(sys.argv[2]),sys.argv[3]=='1'\n"
    "c=ssl._create_unverified_context() if k else None\n"
    "try:\n"
    "    r=urllib.request.urlopen(u,timeout=t,context=c);s=r.status;b=r.read()\n"
    "except urllib.error.HTTPError as e:\n"
    "    s=e.code;b=e.read()\n"
    "except Exception as e:\n"
    "    sys.stderr.write('%s: %s\\n'%(type(e).__name__,e));sys.exit(3)\n"
    f"sys.stdout.buffer.write(b+b'\\n{HTTP_STATUS_MARK}%d\\n'%s)\n"
)


def http_url(check: HttpCheck, namespace: str) -> str:
    """The Service's in-cluster name (``<service>.<namespace>.svc``), port and path."""
    return f"{check.scheme}://{check.service}.{namespace}.svc:{check.port}{check.path}"


def http_command(client: HttpClient, url: str, timeout: float, insecure: bool) -> list[str]:
    seconds = str(max(1, int(timeout)))
    if client is HttpClient.CURL:
        return ["curl", "-sS", "-o", "-", "-w", f"\\n{HTTP_STATUS_MARK}%{{http_code}}\\n", "--max-time", seconds,
                *(["-k"] if insecure else []), url]
    if client is HttpClient.WGET:
        return ["wget", "-q", "-S", "-O", "-", "-T", seconds, *(["--no-check-certificate"] if insecure else []), url]
    if client is HttpClient.PYTHON3:
        return ["python3", "-c", _PYTHON_CLIENT, url, seconds, "1" if insecure else "0"]
    raise ValueError(f"no command for client {client}")


_WGET_STATUS_RE = re.compile(r"HTTP/[0-9.]+ (\d{3})")


def parse_http_output(client: HttpClient, result: ExecResult) -> tuple[int | None, str, str]:
    """(HTTP status or None, body, what went wrong when there is no status)."""
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace").strip()
    if client is HttpClient.WGET:
        statuses = _WGET_STATUS_RE.findall(stderr)
        if statuses:
            return int(statuses[-1]), stdout, ""
        return None, stdout, stderr[-300:] or result.describe()
    body, mark, rest = stdout.rpartition(HTTP_STATUS_MARK)
    if not mark:
        return None, stdout, stderr[-300:] or result.describe()
    code = rest.strip()
    body = body[:-1] if body.endswith("\n") else body
    if not code.isdigit() or int(code) == 0:  # curl writes 000 when no response came
        return None, body, stderr[-300:] or "no response"
    return int(code), body, ""


@dataclass
class _Attempt:
    passed: bool
    reason: str
    output: str


def _exec_attempt(cluster: Cluster, check: ExecCheck, namespace: str, timeout: float) -> _Attempt:
    chosen = choose_pod(cluster, namespace, check.pod_selector, check.container)
    if isinstance(chosen, str):
        return _Attempt(False, chosen, "")
    pod, container = chosen
    result = exec_in_pod(cluster, namespace, pod, check.command, container=container, timeout=timeout)
    stdout = result.stdout.decode("utf-8", "replace")
    output = stdout + (("\n[stderr]\n" + result.stderr.decode("utf-8", "replace")) if result.stderr else "")
    where = f"in {namespace}/{pod} ({container})"
    if result.exit_code != check.expected_exit_code:
        return _Attempt(False, f"{result.describe()} {where}, expected exit code {check.expected_exit_code}", output)
    if check.stdout_regex is not None and not re.search(check.stdout_regex, stdout, re.MULTILINE):
        return _Attempt(False, f"stdout {where} does not match {check.stdout_regex!r}", output)
    matched = f", stdout matches {check.stdout_regex!r}" if check.stdout_regex else ""
    return _Attempt(True, f"exit code {result.exit_code} {where}{matched}", output)


def _http_attempt(cluster: Cluster, check: HttpCheck, namespace: str, timeout: float,
                  clients: list[HttpClient]) -> _Attempt:
    chosen = choose_pod(cluster, namespace, check.pod_selector, check.container)
    if isinstance(chosen, str):
        return _Attempt(False, chosen, "")
    pod, container = chosen
    url = http_url(check, namespace)
    where = f"from {namespace}/{pod} ({container})"
    tried = []
    for client in list(clients):
        result = exec_in_pod(cluster, namespace, pod, http_command(client, url, timeout, check.insecure),
                             container=container, timeout=timeout + 5)
        if len(clients) > 1 and _client_missing(result):
            tried.append(client.value)
            clients.remove(client)
            continue
        if len(clients) > 1:  # the first client that exists is used from now on
            clients[:] = [client]
        status, body, error = parse_http_output(client, result)
        output = body + (("\n[stderr]\n" + result.stderr.decode("utf-8", "replace")) if result.stderr else "")
        if status is None:
            return _Attempt(False, f"GET {url} {where} with {client.value}: no response ({error})", output)
        if status != check.expected_status:
            return _Attempt(False, f"GET {url} {where}: status {status}, expected {check.expected_status}", output)
        if check.body_regex is not None and not re.search(check.body_regex, body, re.MULTILINE):
            return _Attempt(False, f"GET {url} {where}: status {status}, body does not match {check.body_regex!r}",
                            output)
        matched = f", body matches {check.body_regex!r}" if check.body_regex else ""
        return _Attempt(True, f"GET {url} {where}: status {status}{matched}", output)
    return _Attempt(False, f"no HTTP client in {namespace}/{pod} ({container}): tried {', '.join(tried)}", "")


def run_user_check(cluster: Cluster, check: ExecCheck | HttpCheck, namespace_map: Mapping[str, str], *,
                   clock: Clock = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> CheckResult:
    """Run an exec or http check until one attempt passes or its timeout ends."""
    started, t0 = _now(), clock()
    kind = CheckType.EXEC if isinstance(check, ExecCheck) else CheckType.HTTP
    try:
        namespace = check_namespace(check, namespace_map)
    except VerificationSpecError as exc:
        return CheckResult(name=check.name, type=kind, passed=False, reason=str(exc), started_at=started, attempts=0)
    deadline = t0 + check.timeout_seconds
    clients = ([HttpClient.CURL, HttpClient.WGET, HttpClient.PYTHON3]
               if isinstance(check, HttpCheck) and check.client is HttpClient.AUTO
               else [check.client] if isinstance(check, HttpCheck) else [])
    attempts = 0
    attempt = _Attempt(False, "not run", "")
    while True:
        attempts += 1
        remaining = max(deadline - clock(), 1.0)
        try:
            if isinstance(check, ExecCheck):
                attempt = _exec_attempt(cluster, check, namespace, remaining)
            else:
                attempt = _http_attempt(cluster, check, namespace, remaining, clients)
        except ApiError as exc:
            attempt = _Attempt(False, f"exec could not start: {exc}", "")
        if attempt.passed or clock() + check.interval_seconds > deadline:
            break
        sleep(check.interval_seconds)
    reason = attempt.reason if attempt.passed else (
        f"{attempt.reason} (after {attempts} attempt(s) in {clock() - t0:.0f}s)")
    return CheckResult(name=check.name, type=kind, passed=attempt.passed, reason=reason, started_at=started,
                       duration_seconds=clock() - t0, attempts=attempts, output_tail=tail(attempt.output))
