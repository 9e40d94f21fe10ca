"""`kubekeep restore`: run the restore flow (or its dry run); the report as a file on request."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .app import Flag, app
from .common import (
    ContextOpt,
    KubeconfigOpt,
    LocationOpt,
    MoverImageOpt,
    MoverLocationOpt,
    MoverSaOpt,
    MoverSecretOpt,
    PasswordFileOpt,
    VerboseOpt,
    cluster_connection,
    encryption_key,
    location_profile,
    mover_options,
    pairs,
    progress,
    session,
    yaml_file,
)


class ExistingPolicy(StrEnum):
    skip = "skip"
    update = "update"
    recreate = "recreate"


class NodePortConflict(StrEnum):
    fail = "fail"
    reassign = "reassign"


TRANSFORM_FILE_KEYS = ("transforms", "priorities", "tiers", "after", "existing_by_kind")


def load_transforms_file(path: Path) -> dict[str, Any]:
    """``--transforms FILE.yaml``: the structured restore parameters, validated before anything runs.

    Keys (all optional): ``transforms`` (the transform chain: namespace-map, storage-class-map,
    image-rewrite, labels, annotations, json-patch), ``priorities`` (the restore order), ``tiers`` and
    ``after`` (readiness tiers), ``existing_by_kind`` (``Kind.group: skip|update|recreate``).
    """
    from kubekeep.restore import TierPolicy, TransformChain, parse_priorities
    from kubekeep.restore.errors import RestorePlanError
    from kubekeep.restore.policy import PolicyError, RestorePolicy

    data = yaml_file(path, "--transforms")
    if isinstance(data, list):
        data = {"transforms": data}
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a mapping with some of {', '.join(TRANSFORM_FILE_KEYS)}",
                                 param_hint="--transforms")
    unknown = sorted(set(data) - set(TRANSFORM_FILE_KEYS) - {"version"})
    if unknown:
        raise typer.BadParameter(f"{path}: unknown key(s) {', '.join(unknown)} (known: "
                                 f"{', '.join(TRANSFORM_FILE_KEYS)})", param_hint="--transforms")
    try:
        if data.get("transforms") is not None:
            TransformChain.from_dict(data["transforms"])
        if data.get("priorities") is not None:
            parse_priorities(data["priorities"])
        tiers = {k: data[k] for k in ("tiers", "after") if data.get(k) is not None}
        if tiers:
            TierPolicy.from_dict(tiers)
        if data.get("existing_by_kind") is not None:
            RestorePolicy.from_dict({"existing_by_kind": data["existing_by_kind"]})
    except (RestorePlanError, PolicyError, ValueError, TypeError) as exc:
        raise typer.BadParameter(f"{path}: {str(exc).splitlines()[0]}", param_hint="--transforms") from None
    return {"transforms": data.get("transforms"), "priorities": data.get("priorities"),
            "tiers": {k: data[k] for k in ("tiers", "after") if data.get(k) is not None} or None,
            "existing_by_kind": data.get("existing_by_kind")}


@app.command("restore")
def restore_cmd(
    location: LocationOpt,
    restore_point: Annotated[str | None, typer.Option("--restore-point", "-p", help="Restore point id.")] = None,
    app_name: Annotated[str | None, typer.Option("--app", help="Latest restore point of this app.")] = None,
    before: Annotated[datetime | None, typer.Option("--before", help="Latest point finished before this time.")] = None,
    password_file: PasswordFileOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace_map: Annotated[list[str] | None, typer.Option("--namespace-map", help="old=new (repeatable).")] = None,
    storage_class_map: Annotated[list[str] | None, typer.Option(
        "--storage-class-map", help="old=new (repeatable).")] = None,
    image_rewrite: Annotated[list[str] | None, typer.Option(
        "--image-rewrite", help="prefix=new-prefix (repeatable).")] = None,
    transforms: Annotated[Path | None, typer.Option(
        "--transforms", help="YAML file with transforms (json-patch, labels, annotations, ...), priorities, "
                             "tiers/after and existing_by_kind (docs/restore-order.md).")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only these kinds (repeatable).")] = None,
    name: Annotated[list[str] | None, typer.Option("--name", help="Only objects with these names (repeatable).")
                    ] = None,
    selector: Annotated[str | None, typer.Option("--selector", "-L", help="Only objects with these labels.")] = None,
    pvc: Annotated[list[str] | None, typer.Option(
        "--pvc", help="Only these claims (namespace/name, repeatable).")] = None,
    existing: Annotated[ExistingPolicy, typer.Option("--existing", help="What to do with objects that exist.")
                        ] = ExistingPolicy.skip,
    recreate_pvcs: Annotated[bool, Flag(
        "--recreate-pvcs", help="With --existing recreate, also recreate claims and volumes that hold data.")
    ] = False,
    no_create_namespaces: Annotated[bool, Flag(
        "--no-create-namespaces", help="Do not create target namespaces the backup has no object for.")] = False,
    node_port_conflicts: Annotated[NodePortConflict, typer.Option(
        "--node-port-conflicts", help="A kept nodePort taken on the target: fail, or reassign a free one.")
    ] = NodePortConflict.fail,
    ready_timeout: Annotated[float, typer.Option("--ready-timeout", min=1,
                                                 help="Seconds to wait for each readiness tier.")] = 300.0,
    crd_timeout: Annotated[float, typer.Option("--crd-timeout", min=1,
                                               help="Seconds to wait for CRDs to be Established.")] = 60.0,
    delete_timeout: Annotated[float, typer.Option("--delete-timeout", min=1,
                                                  help="Seconds to wait for a deleted object (recreate).")] = 120.0,
    preserve_node_ports: Annotated[bool, Flag("--preserve-node-ports",
                                                      help="Keep nodePorts the source cluster assigned.")] = False,
    include_owned: Annotated[bool, Flag(
        "--include-owned", help="Also restore objects their restored owners would recreate (Pods, ReplicaSets).")
    ] = False,
    restore_status: Annotated[list[str] | None, typer.Option(
        "--restore-status", help="Restore the status of custom resources of this kind (Kind.group) through the "
                                 "status subresource (repeatable).")] = None,
    dry_run: Annotated[bool, Flag("--dry-run", help="Validate server-side, change nothing.")] = False,
    no_wait: Annotated[bool, Flag("--no-wait", help="Do not wait for workload tiers to be Ready.")] = False,
    no_volumes: Annotated[bool, Flag("--no-volumes", help="Restore manifests only, no volume data.")] = False,
    no_verify: Annotated[bool, Flag(
        "--no-verify-volumes", help="Do not re-read restored volume data (then no workload that mounts it starts).")
    ] = False,
    files: Annotated[str | None, typer.Option(
        "--files", help="Restore files of one volume to --target instead of the app: namespace/pvc[:path].")
    ] = None,
    target: Annotated[Path | None, typer.Option("--target", help="Local directory for --files.")] = None,
    mover_image: MoverImageOpt = None,
    mover_location: MoverLocationOpt = None,
    mover_env_from_secret: MoverSecretOpt = None,
    mover_service_account: MoverSaOpt = None,
    report_file: Annotated[Path | None, typer.Option(
        "--report", help="Write the per-object report to this file: .json or .md.")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Restore a restore point (or part of it) onto a cluster, or dry-run it."""
    if report_file is not None and report_file.suffix.lower() not in (".json", ".md"):
        raise typer.BadParameter(f"{report_file}: the report is written as .json or .md", param_hint="--report")
    structured = load_transforms_file(transforms) if transforms is not None else {}
    file_spec = None
    if files is not None:
        pvc_ref, _, path = files.partition(":")
        if "/" not in pvc_ref or target is None:
            raise typer.BadParameter("--files namespace/pvc[:path] needs --target DIR", param_hint="--files")
        file_spec = {"pvc": pvc_ref, "target": str(target), **({"path": path} if path else {})}
    policy: dict[str, Any] = {"recreate_pvcs": recreate_pvcs, "create_namespaces": not no_create_namespaces,
                              "node_port_conflicts": node_port_conflicts.value, "ready_timeout": ready_timeout,
                              "crd_timeout": crd_timeout, "delete_timeout": delete_timeout}
    if structured.get("existing_by_kind"):
        policy["existing_by_kind"] = structured["existing_by_kind"]
    params: dict[str, Any] = {
        "restore_point": restore_point, "app": app_name, "before": before, "kinds": kind, "names": name,
        "label_selector": selector, "pvcs": pvc, "namespace_map": pairs(namespace_map, "--namespace-map"),
        "storage_class_map": pairs(storage_class_map, "--storage-class-map"),
        "image_rewrite": pairs(image_rewrite, "--image-rewrite"), "transforms": structured.get("transforms"),
        "priorities": structured.get("priorities"), "tiers": structured.get("tiers"), "existing": existing.value,
        "policy": policy, "preserve_node_ports": preserve_node_ports, "include_owned": include_owned,
        "dry_run": dry_run, "wait": not no_wait, "restore_volumes": not no_volumes, "verify_volumes": not no_verify,
        "files": file_spec, "restore_status": restore_status,
        "mover": mover_options(mover_image, mover_location, mover_env_from_secret, mover_service_account)}
    what = "dry run" if dry_run else "restore"
    with session(what, flows=True, verbose=verbose):
        from flows.restore import RestoreFailed, restore

        loc, key = location_profile(location, must_exist=True), encryption_key(password_file)
        conn = cluster_connection(kubeconfig, context)
        try:
            with progress("dry run" if dry_run else "restoring"):
                result = restore(location=loc, encryption_key=key, cluster=conn, **params)
        except RestoreFailed as exc:
            if report_file is not None and exc.report:
                write_report(exc.report, report_file)
            raise
        if report_file is not None and "outcomes" in result:
            write_report(result, report_file)
    if file_spec is not None:
        summary = result["files"]
        typer.echo(f"restored {summary.get('files', 0)} file(s), {summary.get('bytes', 0)} bytes to {target} "
                   f"(verified {summary.get('verified_files', 0)}) from {result['restore_point']}")
        return
    counts = ", ".join(f"{k} {v}" for k, v in result["counts"].items())
    typer.echo(f"{result['status']}: {counts}")
    typer.echo(f"restore {result.get('restore_id', '')} of {result.get('restore_point_id', '')}; "
               f"report: kubekeep restores -l {location} --id {result.get('restore_id', '')}")


def restore_summary(report: dict[str, Any]) -> str:
    problems = [o for o in report.get("outcomes") or () if o.get("action") in _FAILURE_ACTIONS]
    head = f"{report.get('status', 'failed')}"
    if report.get("aborted"):
        head += f": {report['aborted']}"
    elif problems:
        first = problems[0]
        head += f": {first['action']} {first['kind']} {first['namespace']}/{first['name']}: {first['reason']}"
    more = f"; {len(problems)} object(s) with problems" if problems else ""
    rid = report.get("restore_id")
    hint = f"; report: kubekeep restores --id {rid}" if rid else ""
    return " ".join((head + more + hint).split())


_FAILURE_ACTIONS = frozenset({"conflict", "immutable-field", "missing-storage-class", "missing-crd", "not-convertible",
                              "namespace-terminating", "failed", "not-attempted"})


def write_report(report: dict[str, Any], path: Path) -> None:
    """The report as JSON (everything) or Markdown (summary, volumes, problems and every object)."""
    from kubekeep.restore.report import RestoreReport

    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n")
        return
    parsed = RestoreReport.from_dict(report)
    title = f"Restore `{report.get('restore_id', '')}` of `{report.get('restore_point_id', '')}`\n\n"
    path.write_text(title + parsed.markdown(objects=True))
