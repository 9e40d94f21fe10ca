"""Run names and artifact keys (kubekeep.ui.names)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kubekeep.ui import ARTIFACT_KEY_MAX, artifact_key, backup_run_name, point_label, restore_run_name

PREFECT_KEY = re.compile(r"^[a-z0-9-]*$")  # prefect.types.names: what the API accepts for an artifact key


@pytest.mark.parametrize(("parts", "expected"), [
    (("restore-points", "shop"), "restore-points-shop"),
    (("restore-points", "Shop_EU"), "restore-points-shop-eu"),
    (("restore", "shop-20261129T020000Z-3fa2c1"), "restore-shop-20261129t020000z-3fa2c1"),
    (("restore-points", "s3://bucket/prefix/"), "restore-points-s3-bucket-prefix"),
    (("backup", "", "--x--"), "backup-x"),
    (("backup", "café"), "backup-caf"),
])
def test_artifact_keys_are_what_prefect_accepts(parts: tuple[str, ...], expected: str) -> None:
    key = artifact_key(*parts)
    assert key == expected
    assert PREFECT_KEY.match(key)


def test_long_artifact_keys_stay_distinct_and_short() -> None:
    a = artifact_key("restore-points", "x" * 200 + "a")
    b = artifact_key("restore-points", "x" * 200 + "b")
    assert a != b
    assert len(a) == len(b) == ARTIFACT_KEY_MAX
    assert PREFECT_KEY.match(a) and not a.endswith("-") and "--" not in a


def test_an_artifact_key_needs_a_letter_or_digit() -> None:
    with pytest.raises(ValueError, match="at least one letter or digit"):
        artifact_key("--", "__")


def test_backup_run_name_is_app_and_utc_minute() -> None:
    at = datetime(2026, 11, 29, 3, 0, 59, tzinfo=timezone(timedelta(hours=1)))
    assert backup_run_name("shop", at) == "backup shop 2026-11-29T02:00Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        backup_run_name("shop", datetime(2026, 11, 29))


def test_point_label_reads_the_time_out_of_the_id() -> None:
    assert point_label("shop-20261129T020000Z-3fa2c1") == "shop@2026-11-29T02:00Z"
    assert point_label("my-app-2-20261129T020000Z-3fa2c1") == "my-app-2@2026-11-29T02:00Z"
    assert point_label("imported-point") == "imported-point"


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"app": "shop", "namespace_map": {"shop": "shop-copy"}, "dry_run": True}, "restore shop→shop-copy (dry run)"),
    ({"app": "shop"}, "restore shop"),
    ({"restore_point": "shop-20261129T020000Z-3fa2c1", "namespace_map": [("shop", "copy"), ("db", "copy")]},
     "restore shop@2026-11-29T02:00Z→copy"),
    ({"app": "shop", "namespace_map": {"shop": "a", "db": "b"}}, "restore shop→a, b"),
    ({}, "restore latest"),
])
def test_restore_run_names(kwargs: dict, expected: str) -> None:  # type: ignore[type-arg]
    assert restore_run_name(**kwargs) == expected


def test_names_use_utc() -> None:
    assert backup_run_name("a", datetime(2026, 1, 1, tzinfo=UTC)).endswith("2026-01-01T00:00Z")
