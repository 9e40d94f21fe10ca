"""`kubekeep` commands: what a command's session does with errors, and what starting a command imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from flows.cli.common import session

ROOT = Path(__file__).resolve().parents[2]


def test_a_usage_error_inside_a_session_stays_a_usage_error() -> None:
    app = typer.Typer()

    @app.command()
    def probe() -> None:
        with session("probe"):
            raise typer.BadParameter("no such thing", param_hint="'--thing'")

    result = CliRunner().invoke(app, [])
    # typer's vendored click raises its own exception classes: the session must let them through
    # (exit code 2 and the usage message), not report them as a failure of the command
    assert result.exit_code == 2, result.output
    assert "no such thing" in result.output
    assert "probe failed" not in result.output


def test_starting_a_command_does_not_import_what_only_some_commands_need() -> None:
    """YAML (transforms and hooks files) and urllib (the Prefect API's health check) cost ~90 ms of
    every command's start-up; `repo backup` needs neither."""
    probe = ("import sys; from flows.cli import main; "
             "print(sorted(m for m in ('yaml', 'urllib.request', 'click') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


#: the end of every probe below: run the `kubekeep` command of the probe's arguments, say how it exited
_RUN_MAIN = """
sys.argv = ["kubekeep", *sys.argv[1:]]
from flows.cli import main
try:
    main()
except SystemExit as exc:
    print("EXIT", exc.code)
"""

_COUNT_BUILT = """
import sys, time, typer.main as tm
built = []
original = tm.get_command_from_info
def counted(*args, **kwargs):
    built.append(1)
    return original(*args, **kwargs)
tm.get_command_from_info = counted
""" + _RUN_MAIN + """
print("BUILT", len(built))
"""


def _init_repo(repo: str, env: dict[str, str]) -> None:
    init = subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", "repo", "init", "--repo", repo],
                          cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    assert init.returncode == 0, init.stdout + init.stderr


def _run_cli(probe: str, *argv: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", probe, *argv], cwd=ROOT, capture_output=True, text=True,
                         env=env, check=False)
    return out.stdout + out.stderr


def test_a_command_builds_only_its_own_branch_of_the_command_tree() -> None:
    """Building all ~40 commands (a signature and its annotations evaluated per command) cost ~0.23 s of
    every command's start-up; `kubekeep repo snapshots` needs one. Its help is the same as the full tree's."""
    from flows.cli import app

    out = _run_cli(_COUNT_BUILT, "repo", "snapshots", "--help")
    assert "BUILT 1" in out, out
    full = CliRunner().invoke(app, ["repo", "snapshots", "--help"], prog_name="kubekeep", terminal_width=100)
    assert full.exit_code == 0
    assert "--repo" in out and "Usage: kubekeep repo snapshots" in out
    # the whole tree still answers what needs it: the root's help lists every group, a typo gets the list
    root = _run_cli(_COUNT_BUILT, "--help")
    assert "repo" in root and "restore" in root and "copy" in root
    typo = _run_cli(_COUNT_BUILT, "repo", "snapshotz")
    assert "No such command" in typo and "snapshotz" in typo


_KDF_BEFORE_TREE = """
import os, sys, threading, time
import kubekeep.repo.crypto as crypto
events = []
derive = crypto.hash_secret_raw
def timed(*args, **kwargs):
    events.append(("kdf-" + ("main" if threading.current_thread() is threading.main_thread() else "thread"),
                   time.monotonic()))
    return derive(*args, **kwargs)
crypto.hash_secret_raw = timed
import flows.cli.repo as repo_cli
opening = repo_cli._open
def opened(*args, **kwargs):
    # the machine may be loaded: give the early thread its head start instead of racing it
    deadline = time.monotonic() + (10 if os.environ.get("KUBEKEEP_PASSWORD") else 0)
    while not any(name == "kdf-thread" for name, _ in events) and time.monotonic() < deadline:
        time.sleep(0.01)
    events.append(("open", time.monotonic()))
    return opening(*args, **kwargs)
repo_cli._open = opened
""" + _RUN_MAIN + """
print("EVENTS", " ".join(name for name, _ in sorted(events, key=lambda e: e[1])))
"""


def test_a_repo_command_derives_its_key_while_it_starts_up(tmp_path: Path) -> None:
    """Argon2id (~0.3 s of one core) holds no lock: with the passphrase in the environment, a repo command
    starts it first, on another thread (the other core), instead of after its start-up (imports, parsing)."""
    import os

    env = {**os.environ, "KUBEKEEP_PASSWORD": "a passphrase for the test"}
    repo = str(tmp_path / "repo")
    _init_repo(repo, env)
    out = _run_cli(_KDF_BEFORE_TREE, "repo", "snapshots", "--repo", repo, env=env)
    assert "EXIT" not in out or "EXIT 0" in out, out
    assert "EVENTS kdf-thread open" in out, out
    # a wrong passphrase is still refused, with one line
    bad = _run_cli(_KDF_BEFORE_TREE, "repo", "snapshots", "--repo", repo,
                   env={**env, "KUBEKEEP_PASSWORD": "not it"})
    assert "EXIT 1" in bad and "wrong passphrase" in bad, bad
    # without the passphrase in the environment (a file), the command derives it itself, once
    (tmp_path / "pw").write_text("a passphrase for the test\n")
    filed = _run_cli(_KDF_BEFORE_TREE, "repo", "snapshots", "--repo", repo, "--password-file", str(tmp_path / "pw"),
                     env={k: v for k, v in env.items() if k != "KUBEKEEP_PASSWORD"})
    assert "EVENTS open kdf-main" in filed, filed


_SIZED = """
import sys
import flows.cli.repo as repo_cli
sized = []
original = repo_cli._tree_size
def counted(path):
    sized.append(str(path))
    return original(path)
repo_cli._tree_size = counted
""" + _RUN_MAIN + """
print("SIZED", len(sized))
"""


def test_a_backup_without_a_terminal_does_not_walk_its_source_twice(tmp_path: Path) -> None:
    """The source's total size only feeds the progress bar, which a backup without a terminal does not show:
    a second walk of every file's metadata (8,304 stats in the benchmark's volume) is not paid for it."""
    import os

    env = {**os.environ, "KUBEKEEP_PASSWORD": "a passphrase for the test"}
    repo, source = str(tmp_path / "repo"), tmp_path / "src"
    (source / "d").mkdir(parents=True)
    for i in range(20):
        (source / "d" / f"f{i}").write_text(f"file {i}\n")
    _init_repo(repo, env)
    out = _run_cli(_SIZED, "repo", "backup", "--repo", repo, str(source), env=env)
    assert "SIZED 0" in out and "EXIT 1" not in out, out


def test_a_repo_command_imports_neither_pydantic_nor_prefect(tmp_path: Path) -> None:
    """Typer 0.29 coerces every parameter through a pydantic TypeAdapter: importing pydantic and building an
    adapter per parameter cost ~0.35 s of each command's start-up (pyproject.toml keeps typer below 0.29)."""
    import os

    env = {**os.environ, "KUBEKEEP_PASSWORD": "a passphrase for the test"}
    repo = str(tmp_path / "repo")
    _init_repo(repo, env)
    probe = ("import sys; sys.argv = ['kubekeep', *sys.argv[1:]]\nfrom flows.cli import main\ntry:\n    main()\n"
             "except SystemExit:\n    pass\n"
             "print('IMPORTED', sorted(m for m in ('pydantic', 'prefect', 'boto3') if m in sys.modules))")
    out = _run_cli(probe, "repo", "snapshots", "--repo", repo, env=env)
    assert "IMPORTED []" in out, out
