"""The only code that talks to the Kubernetes API.

Objects travel as plain JSON dicts (what the API served, full fidelity): the
generated model classes cost far more per object than the network and lose
unknown fields. Lists are paged with ``limit``/``continue``. Discovery uses
aggregated discovery (one request for all groups) and falls back to the
per-group documents on servers that lack it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration

from .errors import ApiError, classify_status
from .poll import pauses

JSON = dict[str, Any]
#: JSON bytes a list page aims at (the page size follows the objects' size: list_pages)
PAGE_BYTES = 4 * 2**20
#: items of a list's first page, before the objects' size is known
FIRST_PAGE = 50

_AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)


@dataclass(frozen=True)
class ApiResource:
    """One served resource type (a kind in one group/version)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = field(default_factory=frozenset)
    preferred: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base


def split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


class Cluster:
    """A connection to one cluster's API server."""

    def __init__(self, configuration: Configuration, *, name: str = "") -> None:
        self.configuration = configuration
        self.name = name or configuration.host
        self._api = ApiClient(configuration)
        self._lock = threading.Lock()
        self._resources: list[ApiResource] | None = None

    # ---- construction -------------------------------------------------
    @classmethod
    def from_kubeconfig(cls, path: str | None = None, *, context: str | None = None) -> Cluster:
        """Named after ``context``, else the kubeconfig's current context, else the API server URL."""
        cfg = Configuration()
        kube_config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
        if not context:
            try:
                _, active = kube_config.list_kube_config_contexts(config_file=path)
                context = str((active or {}).get("name") or "")
            except (kube_config.ConfigException, OSError, TypeError):
                context = ""
        return cls(_tuned(cfg), name=context or "")

    @classmethod
    def from_kubeconfig_dict(cls, data: Mapping[str, Any], *, context: str | None = None) -> Cluster:
        cfg = Configuration()
        kube_config.load_kube_config_from_dict(dict(data), context=context, client_configuration=cfg)
        return cls(_tuned(cfg), name=context or str(data.get("current-context") or ""))

    @classmethod
    def in_cluster(cls) -> Cluster:
        cfg = Configuration()
        kube_config.load_incluster_config(client_configuration=cfg)
        return cls(_tuned(cfg), name="in-cluster")

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- raw requests -------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str | int | bool] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | tuple[float, float] = (10.0, 60.0),
    ) -> Any:
        """Send one request; return the decoded JSON body; raise ApiError on failure."""
        raw = self._send(method, path, body=body, query=query, content_type=content_type, accept=accept,
                         timeout=timeout)
        return json.loads(raw) if raw else None

    def _send(self, method: str, path: str, *, body: Any = None, query: Mapping[str, str | int | bool] | None = None,
              content_type: str = "application/json", accept: str = "application/json",
              timeout: float | tuple[float, float] = (10.0, 60.0)) -> bytes:
        """Send one request; return the raw body; raise ApiError on failure."""
        url_path = path
        if query:
            url_path += "?" + urlencode({k: _q(v) for k, v in query.items() if v is not None})
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        method_, url, headers_, body_, post = self._api.param_serialize(
            method, url_path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            resp = self._api.call_api(method_, url, header_params=headers_, body=body_,
                                      post_params=post, _request_timeout=timeout)
        except Exception as exc:  # urllib3 connection/timeout errors
            raise ApiError(0, "ConnectionError", f"{method} {path}: {exc}", transient=True) from exc
        raw: bytes = resp.read()
        if resp.status >= 400:
            raise classify_status(resp.status, raw, f"{method} {path}")
        return raw

    # ---- discovery ----------------------------------------------------
    def server_version(self) -> JSON:
        result: JSON = self.request("GET", "/version")
        return result

    def resources(self, *, refresh: bool = False) -> list[ApiResource]:
        """Every served resource type in every served version (top-level only, no subresources)."""
        with self._lock:
            if self._resources is None or refresh:
                self._resources = self._discover()
            return list(self._resources)

    def preferred_resources(self, *, refresh: bool = False) -> list[ApiResource]:
        return [r for r in self.resources(refresh=refresh) if r.preferred]

    def resource_for(self, api_version: str, kind: str) -> ApiResource:
        group, version = split_api_version(api_version)
        for attempt in (False, True):
            for r in self.resources(refresh=attempt):
                if r.group == group and r.version == version and r.kind == kind:
                    return r
        raise ApiError(404, "NotServed", f"{kind} in {api_version} is not served by {self.name}")

    def served_versions(self, group: str, kind: str) -> list[str]:
        return [r.version for r in self.resources() if r.group == group and r.kind == kind]

    def _discover(self) -> list[ApiResource]:
        out: list[ApiResource] = []
        for root in ("/api", "/apis"):
            doc = self.request("GET", root, accept=_AGGREGATED_ACCEPT)
            if doc.get("kind") == "APIGroupDiscoveryList":
                out.extend(_parse_aggregated(doc))
            else:
                out.extend(self._discover_legacy(root, doc))
        return out

    def _discover_legacy(self, root: str, doc: JSON) -> list[ApiResource]:
        out: list[ApiResource] = []
        if root == "/api":
            groups = [("", v, v == doc["versions"][0]) for v in doc.get("versions", [])]
        else:
            groups = []
            for g in doc.get("groups", []):
                pref = g.get("preferredVersion", {}).get("version")
                groups += [(g["name"], v["version"], v["version"] == pref) for v in g.get("versions", [])]
        for group, version, preferred in groups:
            path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
            try:
                rl = self.request("GET", path)
            except ApiError:
                continue  # an unavailable aggregated API must not break discovery
            for r in rl.get("resources", []):
                if "/" in r["name"]:
                    continue
                out.append(ApiResource(group, version, r["kind"], r["name"], bool(r["namespaced"]),
                                       frozenset(r.get("verbs", [])), preferred))
        return out

    # ---- objects --------------------------------------------------------
    def list_pages(
        self,
        resource: ApiResource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> Iterator[JSON]:
        """Yield each item of a list, fetched page by page. Items carry apiVersion and kind.

        A page holds at most ``limit`` items and, after the first pages, about :data:`PAGE_BYTES` of JSON:
        the page size follows the size of the objects (thousands of small ConfigMaps, or Helm release
        Secrets of hundreds of KiB each), so the memory a list holds does not depend on what it lists.
        """
        cont: str | None = None
        size = min(limit, FIRST_PAGE)
        while True:
            query: dict[str, str | int | bool] = {"limit": size}
            if cont:
                query["continue"] = cont
            if label_selector:
                query["labelSelector"] = label_selector
            if field_selector:
                query["fieldSelector"] = field_selector
            raw = self._send("GET", resource.path(namespace), query=query)
            page = json.loads(raw) if raw else {}
            items = page.get("items") or []
            if items:  # the next page: as many objects of this size as fit in PAGE_BYTES
                size = max(1, min(limit, PAGE_BYTES * len(items) // max(1, len(raw))))
            del raw
            for item in items:
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
                yield item
            cont = page.get("metadata", {}).get("continue")
            if not cont:
                return

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON:
        r = self.resource_for(api_version, kind)
        obj: JSON = self.request("GET", r.path(namespace, name))
        return obj

    def get_or_none(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        try:
            return self.get(api_version, kind, name, namespace)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, obj: JSON, *, dry_run: bool = False, namespace: str | None = None) -> JSON:
        r = self.resource_for(obj["apiVersion"], obj["kind"])
        ns = namespace or obj.get("metadata", {}).get("namespace")
        query = {"dryRun": "All"} if dry_run else None
        created: JSON = self.request("POST", r.path(ns), body=obj, query=query)
        return created

    def replace(self, obj: JSON, *, dry_run: bool = False) -> JSON:
        r = self.resource_for(obj["apiVersion"], obj["kind"])
        md = obj["metadata"]
        query = {"dryRun": "All"} if dry_run else None
        out: JSON = self.request("PUT", r.path(md.get("namespace"), md["name"]), body=obj, query=query)
        return out

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "application/merge-patch+json",
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> JSON:
        r = self.resource_for(api_version, kind)
        path = r.path(namespace, name) + (f"/{subresource}" if subresource else "")
        query = {"dryRun": "All"} if dry_run else None
        out: JSON = self.request("PATCH", path, body=patch, content_type=patch_type, query=query)
        return out

    def scale(self, api_version: str, kind: str, name: str, replicas: int, *,
              namespace: str | None = None) -> JSON:
        """Set ``spec.replicas`` through the ``scale`` subresource; return the Scale object."""
        return self.patch(api_version, kind, name, {"spec": {"replicas": replicas}}, namespace=namespace,
                          subresource="scale")

    def apply(self, obj: JSON, *, field_manager: str = "kubekeep", force: bool = True,
              dry_run: bool = False) -> JSON:
        """Server-side apply."""
        r = self.resource_for(obj["apiVersion"], obj["kind"])
        md = obj["metadata"]
        query: dict[str, str | int | bool] = {"fieldManager": field_manager, "force": force}
        if dry_run:
            query["dryRun"] = "All"
        out: JSON = self.request("PATCH", r.path(md.get("namespace"), md["name"]), body=obj,
                                 content_type="application/apply-patch+yaml", query=query)
        return out

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
               propagation: str = "Background", missing_ok: bool = True) -> None:
        r = self.resource_for(api_version, kind)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        try:
            self.request("DELETE", r.path(namespace, name), body=body)
        except ApiError as exc:
            if exc.status == 404 and missing_ok:
                return
            raise

    def wait_for(
        self,
        api_version: str,
        kind: str,
        name: str,
        predicate: Callable[[JSON | None], bool],
        *,
        namespace: str | None = None,
        timeout: float = 60.0,
        interval: float = 0.25,
        what: str = "condition",
    ) -> JSON | None:
        """Poll one object until ``predicate(obj_or_None)`` holds (fast at first, then every ``interval``:
        kubekeep.cluster.poll); raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        pause = pauses(interval)
        while True:
            obj = self.get_or_none(api_version, kind, name, namespace)
            if predicate(obj):
                return obj
            if time.monotonic() > deadline:
                where = f"{namespace}/{name}" if namespace else name
                raise TimeoutError(f"{kind} {where}: {what} not reached within {timeout:.0f}s")
            time.sleep(next(pause))


def _q(v: str | int | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _tuned(cfg: Configuration) -> Configuration:
    # Backups run several threads against one client; the default pool of 4 starves them.
    cfg.connection_pool_maxsize = 16
    return cfg


def _parse_aggregated(doc: JSON) -> list[ApiResource]:
    out: list[ApiResource] = []
    for g in doc.get("items", []):
        group = g.get("metadata", {}).get("name", "")
        for i, v in enumerate(g.get("versions", [])):
            version = v["version"]
            preferred = i == 0  # versions are listed in preference order
            for r in v.get("resources", []):
                kind = r.get("responseKind", {}).get("kind")
                if not kind:
                    continue
                out.append(ApiResource(group, version, kind, r["resource"], r.get("scope") == "Namespaced",
                                       frozenset(r.get("verbs", [])), preferred))
    return out


def has_condition(obj: JSON | None, type_: str, status: str = "True") -> bool:
    """True when the object's status lists condition ``type_`` with ``status`` (null-safe)."""
    if not obj:
        return False
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == type_ and c.get("status") == status for c in conditions)
