"""The CSI path for volume data: snapshot, clone to a temporary PVC, read it with a mover Job.

For a PVC whose PV is provisioned by a CSI driver that has a VolumeSnapshotClass:

1. create a VolumeSnapshot (``snapshot.storage.k8s.io/v1``) of the PVC and wait
   for ``status.readyToUse`` (a ``status.error`` fails at once);
2. create a temporary PVC from it (``dataSource`` = the snapshot), sized from
   the snapshot's ``restoreSize``;
3. run a mover Job that mounts the temporary PVC read-only and runs this
   project's own entrypoint (``python -m kubekeep.mover ...``) with the args and
   env the caller passes;
4. wait for the Job to complete, then delete the Job, the temporary PVC and the
   VolumeSnapshot — on success and on every failure.

Every temporary object carries ``backup.kubekeep.io/temporary=csi`` and the run's
id, so ``cleanup_leftovers`` can remove what a crashed run left behind.
``volume_method`` decides which path a PVC takes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kubekeep.cluster import ApiError, Cluster, has_condition

log = logging.getLogger(__name__)

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
SNAPSHOT_API = f"{SNAPSHOT_GROUP}/v1"
DEFAULT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class"
#: a VolumeSnapshotClass labelled ``backup.kubekeep.io/snapshot-class=true`` wins over the default class
PREFERRED_CLASS_LABEL = "backup.kubekeep.io/snapshot-class"
TEMPORARY_LABEL = "backup.kubekeep.io/temporary"
RUN_LABEL = "backup.kubekeep.io/run"
SOURCE_PVC_LABEL = "backup.kubekeep.io/source-pvc"
MOVER_COMMAND = ("python", "-m", "kubekeep.mover")

JSON = dict[str, Any]


class CsiError(Exception):
    """A step of the CSI path failed; ``step`` names it (snapshot, clone, mover, ...)."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"CSI {step}: {message}")
        self.step = step


class CsiNotApplicable(CsiError):
    """The CSI path does not apply to this PVC (no CSI PV, no VolumeSnapshotClass, ...)."""

    def __init__(self, message: str) -> None:
        super().__init__("not applicable", message)


# ---- which path ------------------------------------------------------------------
@dataclass(frozen=True)
class VolumeMethod:
    """How a PVC's data can be read. ``str()`` gives ``csi-snapshot``, ``direct`` or ``unsupported: <reason>``."""

    method: Literal["csi-snapshot", "direct", "unsupported"]
    reason: str = ""
    path: str | None = None  # direct: the path on the node (hostPath/local) or the NFS export path
    nfs_server: str | None = None  # direct over NFS
    volume_type: str | None = None  # hostPath | local | nfs | csi
    driver: str | None = None  # csi
    snapshot_class: str | None = None  # csi-snapshot
    pv_name: str | None = None

    def __str__(self) -> str:
        return f"unsupported: {self.reason}" if self.method == "unsupported" else self.method


def volume_method(cluster: Cluster, pvc: Mapping[str, Any]) -> VolumeMethod:
    """Direct for hostPath/local/NFS PVs, csi-snapshot when a VolumeSnapshotClass matches the CSI driver."""
    md, spec = pvc["metadata"], pvc.get("spec") or {}
    where = f"PVC {md.get('namespace')}/{md['name']}"
    phase = (pvc.get("status") or {}).get("phase")
    if not spec.get("volumeName") or phase != "Bound":
        return VolumeMethod("unsupported", f"{where} is not bound (phase {phase or 'unknown'})")
    pv = cluster.get_or_none("v1", "PersistentVolume", spec["volumeName"])
    if pv is None:
        return VolumeMethod("unsupported", f"{where}: its PersistentVolume {spec['volumeName']} does not exist")
    pv_spec, pv_name = pv.get("spec") or {}, pv["metadata"]["name"]
    if (pv_spec.get("volumeMode") or spec.get("volumeMode")) == "Block":
        return VolumeMethod("unsupported", f"{where} is a raw block volume; only filesystem volumes are read",
                            pv_name=pv_name)
    for kind in ("hostPath", "local"):
        if (pv_spec.get(kind) or {}).get("path"):
            return VolumeMethod("direct", path=pv_spec[kind]["path"], volume_type=kind, pv_name=pv_name)
    nfs = pv_spec.get("nfs")
    if nfs:
        return VolumeMethod("direct", path=nfs.get("path") or "/", nfs_server=nfs.get("server"), volume_type="nfs",
                            pv_name=pv_name)
    csi = pv_spec.get("csi")
    if csi:
        driver = csi.get("driver", "")
        try:
            cls = snapshot_class_for(cluster, driver)
        except CsiNotApplicable as exc:
            return VolumeMethod("unsupported", f"{where}: {exc.args[0].removeprefix('CSI not applicable: ')}",
                                volume_type="csi", driver=driver, pv_name=pv_name)
        return VolumeMethod("csi-snapshot", volume_type="csi", driver=driver, snapshot_class=cls, pv_name=pv_name)
    types = sorted(k for k, v in pv_spec.items() if isinstance(v, dict) and k not in (
        "capacity", "claimRef", "nodeAffinity"))
    return VolumeMethod("unsupported", f"{where}: PV {pv_name} ({', '.join(types) or 'unknown type'}) is neither "
                        "hostPath, local, NFS nor CSI", pv_name=pv_name)


def snapshot_api_served(cluster: Cluster) -> bool:
    served = {(r.group, r.version, r.kind) for r in cluster.resources()}
    return {(SNAPSHOT_GROUP, "v1", k) for k in ("VolumeSnapshot", "VolumeSnapshotClass")} <= served


def snapshot_class_for(cluster: Cluster, driver: str) -> str:
    """The VolumeSnapshotClass to use for ``driver``: the one labelled for kubekeep, else the
    default class, else the only one; raise CsiNotApplicable when there is none (or no choice)."""
    if not snapshot_api_served(cluster):
        raise CsiNotApplicable(f"the cluster does not serve {SNAPSHOT_API} VolumeSnapshot/VolumeSnapshotClass "
                               "(no CSI snapshot support installed)")
    res = cluster.resource_for(SNAPSHOT_API, "VolumeSnapshotClass")
    classes = sorted((c for c in cluster.list_pages(res) if c.get("driver") == driver),
                     key=lambda c: c["metadata"]["name"])
    if not classes:
        raise CsiNotApplicable(f"CSI driver {driver} has no VolumeSnapshotClass")
    for marker, key in (("labels", PREFERRED_CLASS_LABEL), ("annotations", DEFAULT_CLASS_ANNOTATION)):
        chosen = [c for c in classes if (c["metadata"].get(marker) or {}).get(key) == "true"]
        if chosen:
            return str(chosen[0]["metadata"]["name"])
    if len(classes) == 1:
        return str(classes[0]["metadata"]["name"])
    raise CsiNotApplicable(f"CSI driver {driver} has {len(classes)} VolumeSnapshotClasses and none is marked "
                           f"default or labelled {PREFERRED_CLASS_LABEL}=true: "
                           + ", ".join(c["metadata"]["name"] for c in classes))


# ---- the mover Job ---------------------------------------------------------------
@dataclass(frozen=True)
class MoverSpec:
    """What the mover Job runs: ``python -m kubekeep.mover <args>`` in ``image`` with ``env``."""

    image: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    env_from_secrets: tuple[str, ...] = ()  # Secrets whose keys become env (repository credentials)
    service_account: str | None = None
    mount_path: str = "/data"
    resources: Mapping[str, Any] | None = None
    security_context: Mapping[str, Any] | None = None  # e.g. runAsUser 0 to read every file
    command: tuple[str, ...] = MOVER_COMMAND
    labels: Mapping[str, str] = field(default_factory=dict)


def mover_job_manifest(namespace: str, name: str, claim: str, mover: MoverSpec, *,
                       labels: Mapping[str, str] | None = None, active_deadline_seconds: int | None = None,
                       read_only: bool = True) -> JSON:
    """The Job that mounts ``claim`` at ``mover.mount_path`` (read-only unless restoring into it) and runs
    the mover once."""
    all_labels = {**(labels or {}), **mover.labels}
    container: JSON = {
        "name": "mover", "image": mover.image, "command": list(mover.command), "args": list(mover.args),
        "env": [{"name": k, "value": v} for k, v in mover.env.items()],
        "volumeMounts": [{"name": "data", "mountPath": mover.mount_path, "readOnly": read_only}],
    }
    if mover.env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in mover.env_from_secrets]
    if mover.resources:
        container["resources"] = dict(mover.resources)
    if mover.security_context:
        container["securityContext"] = dict(mover.security_context)
    pod_spec: JSON = {
        "restartPolicy": "Never", "containers": [container],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}],
    }
    if mover.service_account:
        pod_spec["serviceAccountName"] = mover.service_account
    spec: JSON = {"backoffLimit": 0, "template": {"metadata": {"labels": all_labels}, "spec": pod_spec}}
    if active_deadline_seconds:
        spec["activeDeadlineSeconds"] = int(active_deadline_seconds)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "labels": all_labels}, "spec": spec}


# ---- the choreography --------------------------------------------------------------
@dataclass(frozen=True)
class CsiTimeouts:
    snapshot_ready: float = 600.0
    job: float = 6 * 3600.0  # how long we wait for the mover Job
    job_deadline: float | None = None  # the Job's activeDeadlineSeconds (default: ``job``)
    cleanup: float = 120.0


@dataclass(frozen=True)
class CsiStep:
    name: str
    seconds: float


@dataclass(frozen=True)
class CsiExportResult:
    namespace: str
    pvc: str
    driver: str
    snapshot_class: str
    snapshot: str
    snapshot_content: str | None
    restore_size: str | None
    temp_pvc: str
    job: str
    steps: tuple[CsiStep, ...]
    leftovers: tuple[str, ...] = ()  # temporary objects that were still present after cleanup


def temporary_names(pvc: str, run_id: str) -> tuple[str, str, str]:
    """(VolumeSnapshot, temporary PVC, Job) names: DNS labels of at most 63 characters."""
    run = re.sub(r"[^a-z0-9-]", "-", run_id.lower()).strip("-")[:12] or "run"
    base = re.sub(r"[^a-z0-9-]", "-", pvc.lower()).strip("-")[:38].strip("-") or "pvc"
    stem = f"kk-{base}-{run}"
    return f"{stem}-snap", f"{stem}-src", f"{stem}-mover"


def export_with_snapshot(
    cluster: Cluster,
    namespace: str,
    pvc_name: str,
    mover: MoverSpec,
    *,
    run_id: str,
    snapshot_class: str | None = None,
    temp_storage_class: str | None = None,
    timeouts: CsiTimeouts = CsiTimeouts(),
    poll_interval: float = 0.5,
) -> CsiExportResult:
    """Snapshot the PVC, clone it, run the mover on the clone, clean up; see the module doc.

    Raises CsiNotApplicable before creating anything when the PVC cannot take
    this path, CsiError when a step fails (after cleaning up), and returns the
    names, the size and per-step timings on success.
    """
    pvc = cluster.get_or_none("v1", "PersistentVolumeClaim", pvc_name, namespace)
    if pvc is None:
        raise CsiNotApplicable(f"PVC {namespace}/{pvc_name} does not exist")
    method = volume_method(cluster, pvc)
    if method.volume_type != "csi" or not method.driver:
        raise CsiNotApplicable(f"PVC {namespace}/{pvc_name} is not on a CSI volume ({method})")
    if snapshot_class is None:
        if method.method != "csi-snapshot" or not method.snapshot_class:
            raise CsiNotApplicable(method.reason)
        snapshot_class = method.snapshot_class
    driver = method.driver

    snap_name, clone_name, job_name = temporary_names(pvc_name, run_id)
    labels = {TEMPORARY_LABEL: "csi", RUN_LABEL: _label_value(run_id), SOURCE_PVC_LABEL: _label_value(pvc_name)}
    steps: list[CsiStep] = []
    created: list[tuple[str, str, str]] = []  # (apiVersion, kind, name) in creation order
    content: str | None = None
    restore_size: str | None = None

    def step(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.monotonic()
        try:
            return fn()
        finally:
            steps.append(CsiStep(name, round(time.monotonic() - t0, 3)))

    try:
        snapshot = {"apiVersion": SNAPSHOT_API, "kind": "VolumeSnapshot",
                    "metadata": {"name": snap_name, "namespace": namespace, "labels": labels},
                    "spec": {"volumeSnapshotClassName": snapshot_class,
                             "source": {"persistentVolumeClaimName": pvc_name}}}
        _create(cluster, snapshot, "snapshot", created)
        ready = step("snapshot", lambda: _wait_snapshot_ready(cluster, namespace, snap_name,
                                                              timeouts.snapshot_ready, poll_interval))
        status = ready.get("status") or {}
        content = status.get("boundVolumeSnapshotContentName")
        restore_size = status.get("restoreSize")

        requested = ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
        clone = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": clone_name, "namespace": namespace, "labels": labels},
                 "spec": {"accessModes": ["ReadWriteOnce"],
                          "storageClassName": temp_storage_class or (pvc.get("spec") or {}).get("storageClassName"),
                          "resources": {"requests": {"storage": _larger(restore_size, requested) or "1Gi"}},
                          "dataSource": {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": snap_name}}}
        _create(cluster, clone, "clone", created)

        job = mover_job_manifest(namespace, job_name, clone_name, mover, labels=labels,
                                 active_deadline_seconds=int(timeouts.job_deadline or timeouts.job))
        _create(cluster, job, "mover", created)
        step("mover", lambda: _wait_job(cluster, namespace, job_name, timeouts.job, poll_interval))
    except BaseException as exc:
        leftovers = _cleanup(cluster, namespace, created, timeouts.cleanup, poll_interval)
        if leftovers:
            exc.add_note("temporary objects left behind: " + ", ".join(leftovers))
        if isinstance(exc, ApiError):
            raise CsiError("api", f"{namespace}/{pvc_name}: {exc}") from exc
        raise
    leftovers = step("cleanup", lambda: _cleanup(cluster, namespace, created, timeouts.cleanup, poll_interval))
    if leftovers:
        log.warning("CSI export of %s/%s: temporary objects still present after cleanup: %s",
                    namespace, pvc_name, ", ".join(leftovers))
    return CsiExportResult(namespace=namespace, pvc=pvc_name, driver=driver, snapshot_class=snapshot_class,
                           snapshot=snap_name, snapshot_content=content, restore_size=restore_size,
                           temp_pvc=clone_name, job=job_name, steps=tuple(steps), leftovers=tuple(leftovers))


def restore_with_mover(cluster: Cluster, namespace: str, pvc_name: str, mover: MoverSpec, *, run_id: str,
                       timeouts: CsiTimeouts = CsiTimeouts(), poll_interval: float = 0.5) -> float:
    """Fill a (Bound, unused) PVC by a mover Job that mounts it read-write; clean the Job up in all
    outcomes; return the seconds the Job took. Raises CsiError naming the failed step."""
    job_name = f"kk-restore-{_label_value(pvc_name)[:40]}-{_label_value(run_id)[:12]}".rstrip("-.")
    labels = {TEMPORARY_LABEL: "restore", RUN_LABEL: _label_value(run_id), SOURCE_PVC_LABEL: _label_value(pvc_name)}
    created: list[tuple[str, str, str]] = []
    t0 = time.monotonic()
    try:
        job = mover_job_manifest(namespace, job_name, pvc_name, mover, labels=labels, read_only=False,
                                 active_deadline_seconds=int(timeouts.job_deadline or timeouts.job))
        _create(cluster, job, "mover", created)
        _wait_job(cluster, namespace, job_name, timeouts.job, poll_interval)
    except ApiError as exc:
        raise CsiError("api", f"{namespace}/{pvc_name}: {exc}") from exc
    finally:
        leftovers = _cleanup(cluster, namespace, created, timeouts.cleanup, poll_interval)
        if leftovers:
            log.warning("restore mover for %s/%s left: %s", namespace, pvc_name, ", ".join(leftovers))
    return time.monotonic() - t0


def cleanup_leftovers(cluster: Cluster, namespace: str, *, run_id: str | None = None,
                      timeout: float = 120.0) -> list[str]:
    """Delete the temporary objects of crashed runs (all runs, or one); return what is still present."""
    selector = f"{TEMPORARY_LABEL}=csi" + (f",{RUN_LABEL}={_label_value(run_id)}" if run_id else "")
    found: list[tuple[str, str, str]] = []
    kinds: list[tuple[str, str]] = [("batch/v1", "Job"), ("v1", "PersistentVolumeClaim")]
    if snapshot_api_served(cluster):
        kinds.append((SNAPSHOT_API, "VolumeSnapshot"))
    for api_version, kind in kinds:
        res = cluster.resource_for(api_version, kind)
        found += [(api_version, kind, o["metadata"]["name"])
                  for o in cluster.list_pages(res, namespace=namespace, label_selector=selector)]
    return _cleanup(cluster, namespace, found, timeout, 0.5)


# ---- steps -----------------------------------------------------------------------
def _create(cluster: Cluster, obj: JSON, step: str, created: list[tuple[str, str, str]]) -> None:
    name = obj["metadata"]["name"]
    try:
        cluster.create(obj)
    except ApiError as exc:
        if not exc.conflict:
            raise CsiError(step, f"could not create {obj['kind']} {obj['metadata']['namespace']}/{name}: {exc}") \
                from exc
        # a retried task: the object of the same run exists already; take it over
    created.append((obj["apiVersion"], obj["kind"], name))


def _wait_snapshot_ready(cluster: Cluster, namespace: str, name: str, timeout: float, interval: float) -> JSON:
    deadline = time.monotonic() + timeout
    while True:
        snap = cluster.get_or_none(SNAPSHOT_API, "VolumeSnapshot", name, namespace)
        if snap is None:
            raise CsiError("snapshot", f"VolumeSnapshot {namespace}/{name} disappeared while waiting for it")
        status = snap.get("status") or {}
        if status.get("readyToUse") is True:
            return snap
        error = status.get("error") or {}
        if error.get("message"):
            raise CsiError("snapshot", f"VolumeSnapshot {namespace}/{name} failed: {error['message']}")
        if time.monotonic() > deadline:
            raise CsiError("snapshot", f"VolumeSnapshot {namespace}/{name} not readyToUse within {timeout:g}s "
                           f"(status: {status or 'none — is a snapshot controller running?'})")
        time.sleep(interval)


def _wait_job(cluster: Cluster, namespace: str, name: str, timeout: float, interval: float) -> None:
    deadline = time.monotonic() + timeout
    # the Job controller deletes a failed Job's running pods: keep what they last looked like
    last_seen, next_look, started = "", 0.0, time.monotonic()
    while True:
        job = cluster.get_or_none("batch/v1", "Job", name, namespace)
        if job is None:
            raise CsiError("mover", f"Job {namespace}/{name} disappeared while waiting for it")
        if has_condition(job, "Complete"):
            return
        if has_condition(job, "Failed"):
            cond = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
            now = _pod_diagnostics(cluster, namespace, name)
            raise CsiError("mover", f"Job {namespace}/{name} failed: {cond.get('reason', '')}: "
                           f"{cond.get('message', '')}" + (now if now else f" [last seen: {last_seen}]"
                                                          if last_seen else " [no mover pod was seen]"))
        if time.monotonic() > deadline:
            raise CsiError("mover", f"Job {namespace}/{name} did not finish within {timeout:g}s "
                           f"{_pod_diagnostics(cluster, namespace, name) or '[no mover pod was created]'}")
        if time.monotonic() >= next_look:
            last_seen = _pod_diagnostics(cluster, namespace, name, bare=True) or last_seen
            # closely at first (a pod that cannot start fails fast), then every few seconds
            next_look = time.monotonic() + (interval if time.monotonic() < started + 10 else 5.0)
        time.sleep(interval)


def _pod_diagnostics(cluster: Cluster, namespace: str, job: str, *, bare: bool = False) -> str:
    """Why the mover's pods did not succeed: termination states, or why they are pending."""
    try:
        pods = list(cluster.list_pages(cluster.resource_for("v1", "Pod"), namespace=namespace,
                                       label_selector=f"job-name={job}"))
    except ApiError:
        return ""
    notes: list[str] = []
    for p in pods:
        st = p.get("status") or {}
        bits = [f"phase {st.get('phase')}"]
        for cs in st.get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term:
                bits.append(f"{cs['name']} exit code {term.get('exitCode')} {term.get('reason', '')} "
                            f"{term.get('message', '')}".strip())
        for cond in st.get("conditions") or []:
            if cond.get("status") == "False" and cond.get("message"):
                bits.append(f"{cond['type']}: {cond['message']}")
        notes.append(f"pod {p['metadata']['name']}: " + "; ".join(bits))
    if not notes:
        return ""
    return " | ".join(notes) if bare else " [" + " | ".join(notes) + "]"


def _cleanup(cluster: Cluster, namespace: str, created: Sequence[tuple[str, str, str]], timeout: float,
             interval: float) -> list[str]:
    """Delete in reverse creation order (Job, clone, snapshot), wait until gone; return what remains."""
    problems: list[str] = []
    for api_version, kind, name in reversed(created):
        try:
            # Foreground: the Job disappears only after its pods, which release the clone
            cluster.delete(api_version, kind, name, namespace,
                           propagation="Foreground" if kind == "Job" else "Background")
        except ApiError as exc:
            problems.append(f"{kind} {namespace}/{name} (delete failed: {exc})")
    deadline = time.monotonic() + timeout
    pending = list(created)
    while pending:
        pending = [c for c in pending if cluster.get_or_none(c[0], c[1], c[2], namespace) is not None]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(interval)
    problems += [f"{kind} {namespace}/{name}" for _, kind, name in pending
                 if not any(p.startswith(f"{kind} {namespace}/{name} ") for p in problems)]
    return problems


def _label_value(value: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:63].strip("-_.")
    return cleaned or "x"


_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def _quantity_bytes(q: str) -> float:
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * _SUFFIX[suffix]
    return float(q)


def _larger(a: str | None, b: str | None) -> str | None:
    """The larger of two quantities (a clone must not be smaller than the snapshot's restoreSize)."""
    if not a or not b:
        return a or b
    try:
        return a if _quantity_bytes(a) >= _quantity_bytes(b) else b
    except ValueError:
        return a
