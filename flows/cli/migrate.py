"""`kubekeep migrate`: plan, run or roll back a migration to another cluster (the migrate flow)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .app import Flag, app
from .common import (
    LocationOpt,
    PasswordFileOpt,
    VerboseOpt,
    cluster_connection,
    encryption_key,
    fail,
    location_profile,
    pairs,
    progress,
    session,
    yaml_file,
)


def load_json_patches(path: Path) -> list[dict[str, Any]]:
    """``--json-patches FILE.yaml``: a list of ``{operations: [...], kinds, names, namespaces}``, validated
    before anything runs."""
    from pydantic import ValidationError

    from tasks.parameters import JsonPatchRule

    data = yaml_file(path, "--json-patches")
    if not isinstance(data, list):
        raise typer.BadParameter(f"{path}: expected a list of {{operations: [...], kinds: [...]}}",
                                 param_hint="--json-patches")
    try:
        rules = [JsonPatchRule.model_validate(item) for item in data]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise typer.BadParameter(f"{path}: {where}: {first['msg']}", param_hint="--json-patches") from None
    from kubekeep.restore import TransformChain
    from kubekeep.restore.errors import RestorePlanError

    try:
        TransformChain.from_dict([r.to_spec() for r in rules])
    except (RestorePlanError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: {str(exc).splitlines()[0]}", param_hint="--json-patches") from None
    return [r.model_dump(by_alias=True) for r in rules]


@app.command("migrate")
def migrate_cmd(
    app_name: Annotated[str, typer.Option("--app", help="Application name.")],
    namespaces: Annotated[list[str], typer.Option("--namespace", "-n", help="Namespace or pattern on the source "
                                                                             "(repeatable).")],
    location: LocationOpt,
    from_kubeconfig: Annotated[str | None, typer.Option("--from-kubeconfig", envvar="KUBECONFIG",
                                                        help="Kubeconfig of the source cluster.")] = None,
    from_context: Annotated[str | None, typer.Option("--from-context", help="Context of the source cluster.")
                            ] = None,
    to_kubeconfig: Annotated[str | None, typer.Option("--to-kubeconfig",
                                                      help="Kubeconfig of the target cluster.")] = None,
    to_context: Annotated[str | None, typer.Option("--to-context", help="Context of the target cluster.")] = None,
    plan_only: Annotated[bool, Flag("--plan", help="Show the plan against the target and stop; nothing is "
                                                   "written anywhere.")] = False,
    as_json: Annotated[bool, Flag("--json", help="With --plan: print the plan as JSON.")] = False,
    rollback: Annotated[bool, Flag("--rollback", help="Un-quiesce the source (after a cutover); the target is "
                                                      "left as it is.")] = False,
    yes: Annotated[bool, Flag("--yes", "-y", help="Cut over without asking.")] = False,
    namespace_map: Annotated[list[str] | None, typer.Option("--namespace-map", help="old=new (repeatable).")] = None,
    storage_class_map: Annotated[list[str] | None, typer.Option(
        "--storage-class-map", help="old=new (repeatable).")] = None,
    image_rewrite: Annotated[list[str] | None, typer.Option(
        "--image-rewrite", help="prefix=new-prefix (repeatable).")] = None,
    json_patches: Annotated[Path | None, typer.Option(
        "--json-patches", help="YAML list of {operations: [RFC 6902 ops], kinds, names, namespaces}.")] = None,
    quiesce: Annotated[list[str] | None, typer.Option(
        "--quiesce", help="Workloads scaled to zero at cutover: *, Kind/name or namespace/Kind/name "
                          "(repeatable; default *).")] = None,
    pre_seed_rounds: Annotated[int, typer.Option("--pre-seed-rounds", min=0, max=10,
                                                 help="Backups restored to the target before the cutover.")] = 1,
    exclude_kind: Annotated[list[str] | None, typer.Option("--exclude-kind", help="Leave this kind out "
                                                                                  "(repeatable).")] = None,
    no_bring_crds: Annotated[bool, Flag("--no-bring-crds", help="Refuse instead of creating CRDs the target "
                                                                "lacks.")] = False,
    migration_id: Annotated[str | None, typer.Option("--migration-id", help="Marks what this migration made on "
                                                                            "the target (default: the app).")] = None,
    password_file: PasswordFileOpt = None,
    init: Annotated[bool, Flag("--init", help="Create the repository if the location holds none.")] = False,
    report_file: Annotated[Path | None, typer.Option("--report", help="Write the result (plan, or migration "
                                                                      "report) to this JSON file.")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Migrate an application to another cluster: plan -> pre-seed -> cut over -> prove. The source is
    never deleted; it stays scaled to zero after the cutover (--rollback runs it again)."""
    if plan_only and rollback:
        raise typer.BadParameter("--plan and --rollback do not go together", param_hint="--plan/--rollback")
    if as_json and not plan_only:
        raise typer.BadParameter("--json goes with --plan", param_hint="--json")
    if not (plan_only or rollback or to_kubeconfig or to_context):
        raise typer.BadParameter("give the target cluster: --to-kubeconfig and/or --to-context",
                                 param_hint="--to-kubeconfig")
    run = not (plan_only or rollback)
    if run and not yes and not sys.stdin.isatty():
        fail("a cutover quiesces the source: give --yes (or --plan to see the plan first)", code=2)
    params: dict[str, Any] = {
        "app": app_name, "namespaces": namespaces, "migration_id": migration_id,
        "namespace_map": pairs(namespace_map, "--namespace-map"),
        "storage_class_map": pairs(storage_class_map, "--storage-class-map"),
        "image_rewrite": pairs(image_rewrite, "--image-rewrite"),
        "json_patches": load_json_patches(json_patches) if json_patches is not None else None,
        "quiesce": quiesce, "pre_seed_rounds": pre_seed_rounds, "exclude_kinds": exclude_kind,
        "bring_crds": not no_bring_crds}
    what = "migration plan" if plan_only else "rollback" if rollback else "migration"
    with session(what, flows=True, verbose=verbose):
        from flows.migrate import migrate
        from kubekeep.migrate import MigrationPlan, MigrationRefusedError
        from tasks.parameters import MigrateAction

        source = cluster_connection(from_kubeconfig, from_context)
        target = cluster_connection(to_kubeconfig or from_kubeconfig, to_context)
        if rollback:
            result = migrate(source_cluster=source, target_cluster=target, action=MigrateAction.ROLLBACK, **params)
            typer.echo(f"rollback of {result['migration_id']}: the source runs again: "
                       + (", ".join(result["unquiesced"]) or "nothing was quiesced"))
            return
        loc = location_profile(location)
        try:
            with progress("planning"):
                plan = MigrationPlan.from_dict(migrate(source_cluster=source, target_cluster=target,
                                                       action=MigrateAction.PLAN, **params))
        except MigrationRefusedError as exc:
            typer.echo(exc.plan.render_table(width=_width()))
            _write(report_file, exc.plan.to_dict())
            fail(str(exc), code=3)
        if plan_only:
            _write(report_file, plan.to_dict())
            if as_json:
                typer.echo(plan.to_json())
            else:
                typer.echo(plan.render_table(width=_width()))
            return
        typer.echo(plan.render_table(width=_width(), info=False))
        if not yes and not typer.confirm(f"Cut over {app_name} now? The source is scaled to zero.", default=False):
            fail("not cut over: the source is unchanged", code=1)
        key = encryption_key(password_file)
        with progress(f"migrating {app_name}"):
            result = migrate(source_cluster=source, target_cluster=target, location=loc, encryption_key=key,
                             action=MigrateAction.RUN, init=init, **params)
        _write(report_file, result)
    downtime = result["downtime"]
    volumes = ", ".join(f"{v['pvc']} {'equal' if v['equal'] else 'DIFFERS'}" for v in result["volumes"])
    typer.echo(f"migrated {app_name}: restore {result['restore_id']} of {result['restore_point_id']}; downtime "
               f"{downtime['seconds']:.1f} s; volumes: {volumes or 'none'}; the source stays scaled to zero "
               f"(kubekeep migrate --rollback runs it again)")


def _write(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


def _width() -> int:
    return max(80, shutil.get_terminal_size((120, 24)).columns)
