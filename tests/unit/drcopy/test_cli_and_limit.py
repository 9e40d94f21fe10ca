"""Pure parts of the DR copy: the upload limit's pacing, and the destination's S3 environment."""

from __future__ import annotations

import pytest

from flows.cli.drcopy import destination_environment
from kubekeep.drcopy.throttle import UploadLimit


def test_the_upload_limit_waits_just_long_enough_to_stay_under_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limit = UploadLimit(1000.0, clock=lambda: now[0], sleep=sleep)
    limit(500)  # 0.5 s of budget used at t=0
    assert slept == [0.5]
    now[0] += 2.0  # the limit is an average over the whole copy: idle time counts
    limit(1000)
    assert len(slept) == 1  # due at 1.5 s, already past
    limit(3000)
    assert slept[-1] == pytest.approx(4.5 - 2.5)
    with pytest.raises(ValueError):
        UploadLimit(0)


def test_the_destination_reads_its_own_s3_variables_and_falls_back_to_the_common_ones() -> None:
    env = {"KUBEKEEP_S3_ENDPOINT": "http://a:1", "AWS_ACCESS_KEY_ID": "key-a", "AWS_SECRET_ACCESS_KEY": "secret-a",
           "AWS_REGION": "eu-1", "KUBEKEEP_TO_KUBEKEEP_S3_ENDPOINT": "http://b:2",
           "KUBEKEEP_TO_AWS_ACCESS_KEY_ID": "key-b", "KUBEKEEP_TO_AWS_SECRET_ACCESS_KEY": "secret-b"}
    dest = destination_environment(env)
    assert (dest["KUBEKEEP_S3_ENDPOINT"], dest["AWS_ACCESS_KEY_ID"], dest["AWS_SECRET_ACCESS_KEY"]) == \
        ("http://b:2", "key-b", "secret-b")
    assert dest["AWS_REGION"] == "eu-1"
    assert env["AWS_ACCESS_KEY_ID"] == "key-a"  # the source's environment is left alone
