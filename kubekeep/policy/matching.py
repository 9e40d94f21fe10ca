"""Which discovered applications each policy protects, and which are unprotected.

Discovery finds three kinds of application (kubekeep.backup.scope.discover_applications):
whole namespaces, Helm releases and ``app.kubernetes.io/part-of`` groups. They overlap: a Helm
release lives inside a namespace. An application is

- **protected** when a policy selects it;
- **covered** when it is not selected itself but every namespace it lives in is backed up whole by
  a selected namespace application (a Helm release inside a protected namespace is in that backup);
- **unprotected** otherwise: the list an operator must look at.

An application created after a policy was written is matched the same way on the next run: policies
hold patterns and selectors, never a fixed list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .model import ProtectionPolicy


class DiscoveredApp(Protocol):
    """What matching needs of an application (kubekeep.backup.scope.Application has it)."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def namespaces(self) -> tuple[str, ...]: ...

    @property
    def label_selector(self) -> str | None: ...


@dataclass(frozen=True)
class AppStatus:
    name: str
    source: str
    namespaces: tuple[str, ...]
    #: policies that select the app (empty: not selected)
    policies: tuple[str, ...] = ()
    #: the selected namespace apps whose backups hold this app's namespaces (when not selected itself)
    covered_by: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        if self.policies:
            return "protected"
        return "covered" if self.covered_by else "unprotected"


@dataclass
class ProtectionMap:
    apps: list[AppStatus] = field(default_factory=list)
    #: policy name -> the apps it backs up, in discovery order
    by_policy: dict[str, list[str]] = field(default_factory=dict)
    #: apps selected by more than one policy (each policy backs them up on its own schedule)
    overlaps: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def unprotected(self) -> list[AppStatus]:
        return [a for a in self.apps if a.state == "unprotected"]

    def app(self, name: str) -> AppStatus:
        for status in self.apps:
            if status.name == name:
                return status
        raise KeyError(name)


def match_apps(apps: Iterable[DiscoveredApp], policies: Sequence[ProtectionPolicy],
               namespace_labels: Mapping[str, Mapping[str, str]] | None = None) -> ProtectionMap:
    """Match every discovered app against every policy (pure: labels are passed in)."""
    labels = namespace_labels or {}
    found = list(apps)
    result = ProtectionMap(by_policy={p.name: [] for p in policies})
    selected: dict[str, tuple[str, ...]] = {}
    for app in found:
        names = tuple(p.name for p in policies
                      if p.apps.selects(app.name, app.source, app.namespaces, labels))
        selected[app.name] = names
        for policy in names:
            result.by_policy[policy].append(app.name)
        if len(names) > 1:
            result.overlaps[app.name] = names
    # namespaces backed up whole: those of selected apps that take every object of their namespaces
    whole: dict[str, list[str]] = {}
    for app in found:
        if selected[app.name] and app.label_selector is None:
            for ns in app.namespaces:
                whole.setdefault(ns, []).append(app.name)
    for app in found:
        covered: tuple[str, ...] = ()
        if not selected[app.name] and app.namespaces and all(ns in whole for ns in app.namespaces):
            covered = tuple(dict.fromkeys(name for ns in app.namespaces for name in whole[ns]))
        result.apps.append(AppStatus(app.name, app.source, tuple(app.namespaces), selected[app.name], covered))
    return result
