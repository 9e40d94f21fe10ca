"""ProtectionPolicy: YAML in, one-line errors out; label selectors; matching apps to policies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubekeep.policy import (
    LabelSelector,
    PolicyError,
    SelectorError,
    load_policies,
    match_apps,
    policies_from_yaml,
)

POLICY = """
name: production
apps:
  namespaces: ["shop-*", billing]
  exclude: [shop-scratch]
schedule: {cron: "0 2 * * *", timezone: Europe/Berlin}
retention: {keep_last: 3, keep_daily: 7, keep_weekly: 4, keep_monthly: 12, keep_within: 2d}
location: primary
dr_copy: {location: dr-site, retention: {keep_daily: 3}}
verify: {frequency: daily}
"""


@dataclass(frozen=True)
class App:
    name: str
    source: str
    namespaces: tuple[str, ...]
    label_selector: str | None = None


def test_a_policy_reads_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    [policy] = load_policies(path)
    assert policy.name == "production" and policy.timezone == "Europe/Berlin"
    assert policy.retention.keep_daily == 7 and policy.retention.keep_within == "2d"
    assert policy.dr_copy is not None and policy.dr_copy.mode == "replica"
    assert policy.dr_retention() is not None and policy.dr_retention().keep_daily == 3  # type: ignore[union-attr]
    assert policy.verify.frequency == "daily" and policy.approval_share == 0.5
    # round trip: the same content validates again (what the Block stores)
    assert type(policy).model_validate(policy.model_dump()) == policy


def test_several_policies_in_one_file() -> None:
    text = "policies:\n" + "\n".join("  - " + line if n == 0 else "    " + line
                                     for block in (POLICY, POLICY.replace("production", "staging"))
                                     for n, line in enumerate(block.strip().splitlines()))
    assert [p.name for p in policies_from_yaml(text)] == ["production", "staging"]
    with pytest.raises(PolicyError, match="two policies are named 'production'"):
        policies_from_yaml(text.replace("staging", "production"))


@pytest.mark.parametrize(("change", "message"), [
    (("keep_daily: 7", "keep_daily: -3"), "policy: retention.keep_daily: Input should be greater than or equal to -1"),
    (("keep_within: 2d", "keep_within: 2 days"), "policy: retention.keep_within: duration '2 days' is not valid"),
    (('cron: "0 2 * * *"', 'cron: "0 25 * * *"'), "policy: schedule.cron: cron expression '0 25 * * *' is not valid"),
    (("Europe/Berlin", "Europe/Atlantis"), "schedule.timezone: unknown timezone 'Europe/Atlantis'"),
    (("name: production", "name: Prod_1"), "policy: name: policy name 'Prod_1' is not valid"),
    (("verify: {frequency: daily}", "verify: {frequency: hourly}"), "verify.frequency: Input should be 'never'"),
    (("location: primary", "locaton: primary"), "location: Field required; locaton: Extra inputs are not permitted"),
    (('namespaces: ["shop-*", billing]', "all: true\n  namespaces: [x]"),
     "apps: all: true selects every app; it cannot be combined with namespaces"),
    (('namespaces: ["shop-*", billing]', "namespace_selector: 'tier in (a'"), "unbalanced parentheses"),
    (('  namespaces: ["shop-*", billing]\n  exclude: [shop-scratch]', "  sources: [namespace]"),
     "apps: say which apps: all: true, namespaces, names or namespace_selector"),
    (("retention: {keep_last: 3, keep_daily: 7, keep_weekly: 4, keep_monthly: 12, keep_within: 2d}",
      "retention: {}"), "retention: retention has no keep rule"),
    (("dr_copy: {location: dr-site, retention: {keep_daily: 3}}", "dr_copy: {location: dr, mode: mirror}"),
     "dr_copy.mode: Input should be 'replica' or 'independent'"),
])
def test_mistakes_are_one_clear_line(change: tuple[str, str], message: str) -> None:
    text = POLICY.replace(*change)
    assert text != POLICY
    with pytest.raises(PolicyError) as info:
        policies_from_yaml(text, "policy")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policies(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(PolicyError, match=r"not valid YAML \(line 2\)"):
        load_policies(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(PolicyError, match="the file is empty"):
        load_policies(tmp_path / "empty.yaml")
    with pytest.raises(PolicyError, match="a policy is a mapping"):
        policies_from_yaml("- a\n- b\n")


def test_next_runs_follow_the_timezone_across_dst() -> None:
    [policy] = policies_from_yaml(POLICY.replace('"0 2 * * *"', '"30 2 * * *"'))
    runs = policy.schedule.next_runs(datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    # 02:30 does not exist on 2026-03-29 in Berlin: the run moves to 03:00 CEST
    assert [r.astimezone(UTC).isoformat() for r in runs] == ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("tier=prod", {"tier": "prod"}, True),
    ("tier==prod", {"tier": "dev"}, False),
    ("tier!=prod", {}, True),
    ("tier!=prod", {"tier": "prod"}, False),
    ("team in (a, b),tier", {"team": "b", "tier": ""}, True),
    ("team notin (a,b)", {"team": "a"}, False),
    ("!legacy", {"legacy": "yes"}, False),
    ("example.com/owner=ops, !legacy", {"example.com/owner": "ops"}, True),
])
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected


@pytest.mark.parametrize("selector", ["", "a=b,", "team in ()", "team in (a", "bad key=1", "a=b c", "a=/x"])
def test_bad_label_selectors(selector: str) -> None:
    with pytest.raises(SelectorError):
        LabelSelector.parse(selector)


def test_matching_protected_covered_and_unprotected() -> None:
    policies = policies_from_yaml(
        "policies:\n"
        "  - {name: shop, apps: {namespaces: ['shop-*'], exclude: [shop-scratch]}, schedule: {cron: '0 2 * * *'},"
        " retention: {keep_daily: 7}, location: a}\n"
        "  - {name: gold, apps: {namespace_selector: 'tier=gold', sources: [namespace, helm]},"
        " schedule: {cron: '0 * * * *'}, retention: {keep_hourly: 24}, location: a}\n"
        "  - {name: pg, apps: {names: ['helm:*/postgres'], sources: [helm]}, schedule: {cron: '0 3 * * *'},"
        " retention: {keep_last: 3}, location: a}\n")
    apps = [App("shop-web", "namespace", ("shop-web",)), App("shop-scratch", "namespace", ("shop-scratch",)),
            App("billing", "namespace", ("billing",)),
            App("helm:shop-web/frontend", "helm", ("shop-web",), "app.kubernetes.io/instance=frontend"),
            App("helm:data/postgres", "helm", ("data",), "app.kubernetes.io/instance=postgres"),
            App("data", "namespace", ("data",)),
            App("label:store", "label", ("shop-web", "billing"), "app.kubernetes.io/part-of=store"),
            App("label:web", "label", ("shop-web",), "app.kubernetes.io/part-of=web")]
    labels = {"billing": {"tier": "gold"}, "shop-web": {"tier": "silver"}}
    result = match_apps(apps, policies, labels)
    state = {a.name: (a.state, a.policies, a.covered_by) for a in result.apps}
    assert state["shop-web"] == ("protected", ("shop",), ())
    assert state["shop-scratch"] == ("unprotected", (), ())
    assert state["billing"] == ("protected", ("gold",), ())
    assert state["helm:shop-web/frontend"] == ("covered", (), ("shop-web",))
    assert state["helm:data/postgres"] == ("protected", ("pg",), ())
    assert state["data"] == ("unprotected", (), ())  # the release is protected, not the namespace
    assert state["label:store"] == ("covered", (), ("shop-web", "billing"))
    assert state["label:web"] == ("covered", (), ("shop-web",))
    assert [a.name for a in result.unprotected] == ["shop-scratch", "data"]
    assert result.by_policy == {"shop": ["shop-web"], "gold": ["billing"], "pg": ["helm:data/postgres"]}
    # a namespace created later is matched by the same policy, with no edit
    later = match_apps([*apps, App("shop-api", "namespace", ("shop-api",))], policies, labels)
    assert later.app("shop-api").policies == ("shop",)


def test_all_with_exclusions_and_overlaps() -> None:
    policies = policies_from_yaml(
        "policies:\n"
        "  - {name: everything, apps: {all: true, exclude: ['kube-*', monitoring]}, schedule: {cron: '0 1 * * *'},"
        " retention: {keep_daily: 7}, location: a}\n"
        "  - {name: hourly, apps: {namespaces: [orders]}, schedule: {cron: '0 * * * *'},"
        " retention: {keep_hourly: 24}, location: a}\n")
    apps = [App("orders", "namespace", ("orders",)), App("monitoring", "namespace", ("monitoring",)),
            App("kube-flannel", "namespace", ("kube-flannel",))]
    result = match_apps(apps, policies)
    assert result.by_policy == {"everything": ["orders"], "hourly": ["orders"]}
    assert result.overlaps == {"orders": ("everything", "hourly")}
    assert [a.name for a in result.unprotected] == ["monitoring", "kube-flannel"]


def test_protection_rows_list_each_app_with_last_point_status_and_next_run() -> None:
    from kubekeep.catalog import RestorePoint
    from kubekeep.policy import RunOutcome, protection_rows

    policies = policies_from_yaml(POLICY)
    apps = [App("shop-web", "namespace", ("shop-web",)), App("scratch", "namespace", ("scratch",)),
            App("helm:shop-web/fe", "helm", ("shop-web",), "app.kubernetes.io/instance=fe")]
    result = match_apps(apps, policies)
    started = datetime(2026, 5, 1, 2, tzinfo=UTC)
    last = RestorePoint(id="shop-web-1", app="shop-web", cluster="c", namespaces=("shop-web",), started_at=started,
                        finished_at=started, status="succeeded", snapshot_id="s", location="file:///x")
    next_run = policies[0].schedule.next_runs(started)[0]
    rows = protection_rows(result, {"shop-web": last}, {"shop-web": RunOutcome("backed up", "shop-web-1")},
                           {"production": next_run}, {"shop-web": "passed"})
    assert [(r["app"], r["state"]) for r in rows] == [("shop-web", "protected"), ("helm:shop-web/fe", "covered"),
                                                      ("scratch", "unprotected")]
    assert rows[0]["last point"] == "shop-web-1" and rows[0]["this run"] == "backed up"
    assert rows[0]["next run"] == "2026-05-02T02:00:00+02:00" and rows[0]["policies"] == "production"
    assert rows[1]["policies"] == "covered by shop-web" and rows[2]["policies"] == "none"
    assert rows[2]["last point"] == "" and rows[2]["next run"] == ""
    # this run's verification (protect verifies the apps that are due): blank where none ran
    assert rows[0]["verification"] == "passed" and rows[2]["verification"] == ""


def test_verification_is_due_when_the_newest_verified_point_is_older_than_the_frequency() -> None:
    from datetime import timedelta

    from kubekeep.policy import Verify

    now = datetime(2026, 11, 30, 2, 5, tzinfo=UTC)
    day = timedelta(days=1)
    assert not Verify(frequency="never").due(None, now)
    assert Verify(frequency="every-backup").due(now - timedelta(minutes=5), now)
    for frequency in ("daily", "weekly", "monthly"):
        assert Verify(frequency=frequency).due(None, now)  # never verified: due
    assert not Verify(frequency="daily").due(now - timedelta(hours=6), now)
    assert Verify(frequency="daily").due(now - day - timedelta(minutes=1), now)
    # a run at the same hour a day later whose verified point finished a few minutes later than today's run
    # reached this step: due (a few minutes of jitter never skip a day)
    assert Verify(frequency="daily").due(now - day + timedelta(minutes=7), now)
    assert not Verify(frequency="weekly").due(now - 5 * day, now)
    assert Verify(frequency="weekly").due(now - 7 * day + timedelta(minutes=7), now)
    assert not Verify(frequency="monthly").due(now - 20 * day, now)
    assert Verify(frequency="monthly").due(now - 30 * day, now)
    # a verified point from the future (a skewed clock) counts from its own time
    assert not Verify(frequency="weekly").due(now + day, now)
    with pytest.raises(ValueError):
        Verify(frequency="daily").due(datetime(2026, 11, 30), now)
