"""Restore verification: restore a point into an isolated sandbox, check it, measure it, keep the verdict.

Prefect-free core of ``flows/verify.py`` (docs/verification.md):

- :mod:`.models`: typed checks (exec, http), built-in checks, isolation options, the verification policy;
- :mod:`.isolation`: the sandbox's NetworkPolicy and the transform steps that isolate restored objects;
- :mod:`.sandbox`: sandbox namespaces, their heartbeat, teardown, and cleanup of abandoned sandboxes;
- :mod:`.checks`: the built-in and user checks;
- :mod:`.annotations`: checks declared on the app's objects;
- :mod:`.verdict`: stages, RTO/RPO and the verdict;
- :mod:`.record`: the verdict in the repository and the catalog.
"""

from .annotations import CHECK_ANNOTATION_PREFIX, checks_from_annotations
from .checks import (
    ExpectedObjects,
    declarations_check,
    expected_from_report,
    expected_objects,
    objects_present,
    restore_check,
    run_builtin_checks,
    run_user_check,
    volume_data,
    workloads_ready,
)
from .isolation import ISOLATION_POLICY_NAME, SANDBOX_LABEL, isolation_chain, isolation_policy
from .models import (
    BuiltinChecks,
    CheckResult,
    CheckType,
    ExecCheck,
    HttpCheck,
    HttpClient,
    IsolationOptions,
    UserCheck,
    VerificationPolicy,
    VerificationSpecError,
    merge_checks,
    parse_check,
)
from .record import VERIFICATION_TAG, rebuild_verifications, record_verification, verification_records
from .sandbox import (
    Heartbeat,
    Owner,
    Sandbox,
    SandboxError,
    SandboxState,
    TeardownResult,
    cleanup_abandoned,
    create_sandbox,
    find_sandboxes,
    teardown,
)
from .verdict import (
    RTO_STAGES,
    Stage,
    StageName,
    Verdict,
    checks_stage,
    decide,
    new_verification_id,
    restore_stages,
    rpo_seconds,
    rto_seconds,
)

__all__ = [
    "CHECK_ANNOTATION_PREFIX",
    "ISOLATION_POLICY_NAME",
    "RTO_STAGES",
    "SANDBOX_LABEL",
    "VERIFICATION_TAG",
    "BuiltinChecks",
    "CheckResult",
    "CheckType",
    "ExecCheck",
    "ExpectedObjects",
    "Heartbeat",
    "HttpCheck",
    "HttpClient",
    "IsolationOptions",
    "Owner",
    "Sandbox",
    "SandboxError",
    "SandboxState",
    "Stage",
    "StageName",
    "TeardownResult",
    "UserCheck",
    "Verdict",
    "VerificationPolicy",
    "VerificationSpecError",
    "checks_from_annotations",
    "checks_stage",
    "cleanup_abandoned",
    "create_sandbox",
    "decide",
    "declarations_check",
    "expected_from_report",
    "expected_objects",
    "find_sandboxes",
    "isolation_chain",
    "isolation_policy",
    "merge_checks",
    "new_verification_id",
    "objects_present",
    "parse_check",
    "rebuild_verifications",
    "record_verification",
    "restore_check",
    "restore_stages",
    "run_builtin_checks",
    "rpo_seconds",
    "rto_seconds",
    "run_user_check",
    "teardown",
    "verification_records",
    "volume_data",
    "workloads_ready",
]
