"""Collecting objects from the API: every listable resource type, paged, as raw JSON."""

from __future__ import annotations

from .client import ApiResource

#: read-only or ephemeral types that are never worth backing up
NEVER_BACKED_UP = frozenset({
    ("", "Event"), ("events.k8s.io", "Event"), ("", "Binding"), ("", "ComponentStatus"),
    ("authentication.k8s.io", "TokenReview"), ("authentication.k8s.io", "SelfSubjectReview"),
    ("authorization.k8s.io", "SubjectAccessReview"), ("authorization.k8s.io", "LocalSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"), ("authorization.k8s.io", "SelfSubjectRulesReview"),
    ("coordination.k8s.io", "Lease"), ("metrics.k8s.io", "PodMetrics"), ("metrics.k8s.io", "NodeMetrics"),
})


def listable(resources: list[ApiResource], *, namespaced: bool | None = None) -> list[ApiResource]:
    return [r for r in resources
            if "list" in r.verbs and (r.group, r.kind) not in NEVER_BACKED_UP
            and (namespaced is None or r.namespaced == namespaced)]

