"""Session fixtures registered with release_after_last_use stop right after their last test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_a_session_fixture_stops_after_its_last_user_and_only_once_more_at_the_end(tmp_path: Path) -> None:
    events = tmp_path / "events.txt"
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import pytest
        from tests.plugins.lifetime import release_after_last_use
        pytest_plugins = ["tests.plugins.lifetime"]
        EVENTS = {str(events)!r}

        def log(what):
            with open(EVENTS, "a") as f:
                f.write(what + "\\n")

        @pytest.fixture(scope="session")
        def server():
            stopped = []
            def stop():
                if not stopped:
                    stopped.append(1)
                    log("stop")
            log("start")
            release_after_last_use("server", stop)
            yield
            stop()
            log("session end")
    """))
    (tmp_path / "test_a.py").write_text(textwrap.dedent("""
        from conftest import log
        def test_1(server): log("test_1")
        def test_2(): log("test_2")
        def test_3(server): log("test_3")
        def test_4(): log("test_4")
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull,
                             "--rootdir", str(tmp_path), str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert events.read_text().split() == ["start", "test_1", "test_2", "test_3", "stop", "test_4", "session", "end"]
