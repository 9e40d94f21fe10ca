"""The tests' own calls to the harness Prefect API retry what the server says to retry.

Prefect's server answers 503 for errors a client can retry (a locked SQLite database under load);
its own client retries them, and so must the tests' raw HTTP calls (a 503 failed the pause test
once in a fresh-clone CI run on a loaded machine).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.plugins.prefect import api_client


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, list[str]]]:
    """A server that answers 503 to the first two requests, then 200 with the body it was sent."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(body.decode())
            status = 503 if len(seen) <= 2 else 200
            payload = b'{"exception_message": "Service Unavailable"}' if status == 503 else body
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_503_is_retried_with_the_same_body(flaky_server: tuple[str, list[str]]) -> None:
    url, seen = flaky_server
    with api_client(url) as client:
        response = client.post("/deployments/x/create_flow_run", json={"parameters": {"ids": ["a"]}})
    assert response.status_code == 200
    assert response.json() == {"parameters": {"ids": ["a"]}}
    assert len(seen) == 3 and len(set(seen)) == 1


def test_a_503_that_persists_is_returned(flaky_server: tuple[str, list[str]]) -> None:
    url, seen = flaky_server
    with api_client(url, attempts=2) as client:
        response = client.post("/flow_runs/filter", json={})
    assert response.status_code == 503
    assert len(seen) == 2
