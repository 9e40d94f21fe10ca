"""Run a command in a pod's container through the API server (``pods/exec`` over a websocket).

The API server upgrades the request to a websocket speaking the Kubernetes
channel protocol (v5, else v4): one byte of channel id per frame, 1 = stdout,
2 = stderr, 3 = a final ``Status`` object that carries the exit code. We keep
the raw bytes (a hook's output need not be UTF-8) and only the tail of long
output, so a chatty command cannot exhaust the worker's memory.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes.stream.ws_client import ERROR_CHANNEL, STDERR_CHANNEL, STDOUT_CHANNEL, WSClient
from websocket import WebSocketBadStatusException, WebSocketException

from .client import Cluster
from .errors import ApiError, classify_status

DEFAULT_OUTPUT_LIMIT = 64 * 1024
_EXIT_STATUS_RE = re.compile(r"exit (?:status|code)[: ]+(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class ExecResult:
    """What one exec did. ``exit_code`` is None when the command's fate is unknown
    (timed out, stream lost, or the runtime failed without an exit code; see ``failure``)."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    failure: str | None = None
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe(self) -> str:
        """One line for logs and error messages."""
        if self.timed_out:
            return "timed out"
        if self.exit_code == 0:
            return "exit code 0"
        if self.exit_code is not None:
            return f"exit code {self.exit_code}" + (f" ({self.failure})" if self.failure else "")
        return f"failed: {self.failure or 'no exit status received'}"


class _Tail:
    """The last ``limit`` bytes written to it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = False

    def add(self, chunk: bytes | str) -> None:
        if not chunk:
            return
        self.data += chunk.encode() if isinstance(chunk, str) else chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]
            self.dropped = True


def exec_in_pod(
    cluster: Cluster,
    namespace: str,
    pod: str,
    command: list[str],
    *,
    container: str | None = None,
    timeout: float = 60.0,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
) -> ExecResult:
    """Run ``command`` (argv, no shell) in ``container`` of ``pod`` and wait for it.

    Returns the exit code and the tails of stdout/stderr. A command that runs and
    fails is a result, not an exception; ``ApiError`` is raised only when the
    exec could not start (pod or container missing, pod not running, forbidden,
    node unreachable).
    """
    if not command:
        raise ValueError("exec needs a non-empty command")
    query: list[tuple[str, str]] = [("command", c) for c in command]
    query += [("stdout", "true"), ("stderr", "true"), ("stdin", "false"), ("tty", "false")]
    if container:
        query.append(("container", container))
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec"
    what = f"exec {command[0]!r} in {namespace}/{pod}" + (f" container {container}" if container else "")
    cfg = cluster.configuration
    url = cfg.host.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + path + "?" + urlencode(query)
    headers: dict[str, str] = {}
    if cfg.refresh_api_key_hook is not None:
        cfg.refresh_api_key_hook(cfg)
    token = cfg.get_api_key_with_prefix("authorization")
    if token:
        headers["authorization"] = token

    try:
        ws = WSClient(cfg, url, headers, capture_all=False, binary=True)
    except WebSocketBadStatusException as exc:
        raise classify_status(exc.status_code, exc.resp_body or str(exc).encode(), what) from exc
    except (OSError, ssl.SSLError, WebSocketException) as exc:
        raise ApiError(0, "ConnectionError", f"{what}: {exc}", transient=True) from exc

    out, err = _Tail(output_limit), _Tail(output_limit)
    status_raw = b""
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while ws.is_open():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            try:
                ws.update(timeout=min(remaining, 1.0))
            except (OSError, WebSocketException) as exc:
                return ExecResult(None, bytes(out.data), bytes(err.data), failure=f"stream lost: {exc}",
                                  truncated=out.dropped or err.dropped)
            out.add(_take(ws, STDOUT_CHANNEL))
            err.add(_take(ws, STDERR_CHANNEL))
            status_raw += _as_bytes(_take(ws, ERROR_CHANNEL))
        out.add(_take(ws, STDOUT_CHANNEL))
        err.add(_take(ws, STDERR_CHANNEL))
        status_raw += _as_bytes(_take(ws, ERROR_CHANNEL))
    finally:
        ws.close()

    truncated = out.dropped or err.dropped
    if timed_out:
        return ExecResult(None, bytes(out.data), bytes(err.data), failure=f"no exit within {timeout:g}s",
                          timed_out=True, truncated=truncated)
    exit_code, failure = parse_exec_status(status_raw)
    return ExecResult(exit_code, bytes(out.data), bytes(err.data), failure=failure, truncated=truncated)


def parse_exec_status(raw: bytes) -> tuple[int | None, str | None]:
    """(exit code, failure message) from the final Status of the error channel."""
    if not raw.strip():
        return None, "the stream closed without an exit status"
    try:
        status: dict[str, Any] = json.loads(raw)
    except ValueError:
        return None, raw.decode("utf-8", "replace")[:500]
    if status.get("status") == "Success":
        return 0, None
    message = str(status.get("message", "")) or None
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", "")), message
            except ValueError:
                break
    # Runtimes that report a failed command only as text ("...: exit status 3")
    match = _EXIT_STATUS_RE.search(message or "")
    if match:
        return int(match.group(1)), message
    return None, message or "exec failed without a message"


def _take(ws: WSClient, channel: int) -> bytes | str:
    data: bytes | str = ws.read_channel(channel, timeout=0)
    return data


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data
