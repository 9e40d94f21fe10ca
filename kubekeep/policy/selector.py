"""Kubernetes label selectors (the string form ``tier=prod,team in (a,b),!legacy``), parsed and matched.

The same grammar the API server accepts for ``labelSelector``: comma-separated requirements, each
``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (v1,v2)`` or
``key notin (v1,v2)``. Policies select applications by the labels of their namespaces with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")
_SET = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ = re.compile(r"^(?P<key>[^=!\s]+)\s*(?P<op>==|=|!=)\s*(?P<value>\S*)$")


class SelectorError(ValueError):
    """A label selector that does not parse."""


@dataclass(frozen=True)
class Requirement:
    key: str
    #: one of "exists", "!exists", "in", "notin" (equality is "in" with one value, "!=" "notin")
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    text: str
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        parts = _split(text)
        if not parts:
            raise SelectorError(f"label selector {text!r} is empty")
        return cls(text, tuple(_requirement(part.strip(), text) for part in parts))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"label selector {text!r}: unbalanced parentheses")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    if depth:
        raise SelectorError(f"label selector {text!r}: unbalanced parentheses")
    if current.strip() or parts:
        parts.append(current)
    return [p for p in parts]


def _key(key: str, text: str) -> str:
    if not _KEY.match(key):
        raise SelectorError(f"label selector {text!r}: {key!r} is not a valid label key")
    return key


def _value(value: str, text: str) -> str:
    if not _VALUE.match(value):
        raise SelectorError(f"label selector {text!r}: {value!r} is not a valid label value")
    return value


def _requirement(part: str, text: str) -> Requirement:
    if not part:
        raise SelectorError(f"label selector {text!r}: empty requirement between commas")
    match = _SET.match(part)
    if match:
        values = [v.strip() for v in match["values"].split(",")]
        if not values or any(not v for v in values):
            raise SelectorError(f"label selector {text!r}: {match['op']} needs a list of values, e.g. (a,b)")
        return Requirement(_key(match["key"], text), match["op"], frozenset(_value(v, text) for v in values))
    match = _EQ.match(part)
    if match:
        op = "notin" if match["op"] == "!=" else "in"
        return Requirement(_key(match["key"], text), op, frozenset({_value(match["value"], text)}))
    if part.startswith("!"):
        return Requirement(_key(part[1:].strip(), text), "!exists")
    return Requirement(_key(part, text), "exists")
