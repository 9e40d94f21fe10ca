"""Checks declared on the app's own objects, so they travel with the app into every restore point.

An annotation per check, on any object of the app (a Deployment, a StatefulSet, a Service, the
Namespace, ...)::

    metadata:
      annotations:
        verify.kubekeep.io/check.db-ready: |
          {"type": "exec", "command": ["pg_isready", "-h", "127.0.0.1"], "stdout_regex": "accepting"}
        verify.kubekeep.io/check.home-page: |
          {"type": "http", "service": "web", "port": 80, "path": "/healthz", "body_regex": "ok"}

The key names the check (``check.<name>``); the value is a JSON (or YAML flow) mapping with the
fields of an exec or http check (docs/verification.md). What the annotated object implies is filled in:

- ``namespace``: the object's namespace (a Namespace object: its own name);
- ``pod_selector``: the object's pod selector when it is a workload (``spec.selector.matchLabels``),
  or a Service's ``spec.selector``, unless the check gives one;
- ``service`` (http): the Service's name when the annotation is on a Service.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from kubekeep.manifest import Manifest, annotations_of, dig

from .models import CHECK_NAME_RE, ExecCheck, HttpCheck, VerificationSpecError, parse_check

CHECK_ANNOTATION_PREFIX = "verify.kubekeep.io/check."


def _selector(labels: Any) -> str | None:
    if isinstance(labels, dict) and labels and all(isinstance(v, str) for v in labels.values()):
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return None


def _defaults(manifest: Manifest) -> dict[str, Any]:
    kind = manifest.get("kind")
    md = manifest.get("metadata") or {}
    out: dict[str, Any] = {}
    namespace = md.get("name") if kind == "Namespace" else md.get("namespace")
    if namespace:
        out["namespace"] = namespace
    if kind == "Service":
        out["service"] = md.get("name")
        selector = _selector(dig(manifest, "spec", "selector"))
    else:
        selector = _selector(dig(manifest, "spec", "selector", "matchLabels"))
    if selector:
        out["pod_selector"] = selector
    return out


def checks_from_annotations(manifests: Iterable[Manifest]) -> tuple[list[ExecCheck | HttpCheck], list[str]]:
    """The checks annotated on ``manifests`` (in the order met), and one line per annotation that is not a
    valid check (the verification reports those as failed checks: a broken declaration is not silent)."""
    checks: list[ExecCheck | HttpCheck] = []
    errors: list[str] = []
    seen: dict[str, str] = {}
    for manifest in manifests:
        annotations = annotations_of(manifest)
        md = manifest.get("metadata") or {}
        namespace = md.get("namespace")
        where_obj = f"{manifest.get('kind')} {str(namespace) + '/' if namespace else ''}{md.get('name')}"
        for key, value in sorted(annotations.items()):
            if not key.startswith(CHECK_ANNOTATION_PREFIX):
                continue
            name = key[len(CHECK_ANNOTATION_PREFIX):]
            where = f"{where_obj}: annotation {key}"
            if not CHECK_NAME_RE.match(name):
                errors.append(f"{where}: {name!r} is not a check name (lowercase letters, digits, '-', '_', '.')")
                continue
            if name in seen:
                errors.append(f"{where}: check {name} is also declared on {seen[name]}")
                continue
            try:
                data = yaml.safe_load(value) if isinstance(value, str) else None
            except yaml.YAMLError as exc:
                errors.append(f"{where}: not JSON or YAML: {str(exc).splitlines()[0]}")
                continue
            if not isinstance(data, dict):
                errors.append(f"{where}: expected a mapping like {{\"type\": \"exec\", \"command\": [...]}}")
                continue
            if "name" in data and data["name"] != name:
                errors.append(f"{where}: the name is the key's ({name}); drop 'name' from the value")
                continue
            merged = {**_defaults(manifest), **data, "name": name}
            if merged.get("type") == "exec":
                merged.pop("service", None)
            try:
                checks.append(parse_check(merged, where=where))
            except VerificationSpecError as exc:
                errors.append(str(exc))
                continue
            seen[name] = where_obj
    return checks, errors
