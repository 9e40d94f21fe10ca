"""The Prefect server `kubekeep ui` runs: Prefect's own app, with Kubekeep's block rules checked on save.

The Prefect UI saves a block without running its pydantic validators (docs/ui.md, "Blocks"): an
encryption key with no passphrase, key file or key environment variable would be saved and fail the
first run that uses it. This server runs them when a Kubekeep block is created or edited
(``POST /api/block_documents/``, ``PATCH /api/block_documents/<id>``) and refuses an invalid one with
422 and the reason (``detail``); nothing is saved. Other requests, and blocks of other types, go to
Prefect's app unchanged. Run as ``python -m flows.cli.ui_server PORT`` (127.0.0.1), with the Prefect
settings in the environment (flows/cli/ui.py).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
from prefect.blocks.core import Block
from pydantic import ValidationError

from blocks import ClusterConnection, EncryptionKey, LocationProfile, ProtectionPolicy, validation_reasons

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

KUBEKEEP_BLOCKS: tuple[type[Block], ...] = (ClusterConnection, EncryptionKey, LocationProfile, ProtectionPolicy)
_DOCUMENT = re.compile(r"^/api/block_documents/?(?P<id>[0-9a-f-]{36})?/?$")


def block_problem(cls: type[Block], data: dict[str, Any]) -> str | None:
    """Why ``cls`` refuses ``data`` (a block document's data, as the UI sends it), or None. Data that
    references other block documents is left to Prefect (it cannot be checked without them)."""
    if any(isinstance(v, dict) and "$ref" in v for v in data.values()):
        return None
    try:
        cls.model_validate(data)
    except ValidationError as exc:
        return (f"the {cls.get_block_type_name()} block is invalid: {validation_reasons(exc)}; "
                "nothing was saved")
    return None


class RefuseInvalidBlocks:
    """ASGI middleware: Kubekeep blocks are validated by their own class before Prefect saves them."""

    def __init__(self, app: App, classes: tuple[type[Block], ...] = KUBEKEEP_BLOCKS) -> None:
        self.app = app
        self.classes = {cls.get_block_type_slug(): cls for cls in classes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _DOCUMENT.match(scope.get("path", "")) if scope["type"] == "http" else None
        edit = scope.get("method") == "PATCH"
        if match is None or scope["method"] not in ("POST", "PATCH") or bool(match["id"]) != edit:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        problem = await self._problem(match["id"], body)
        if problem is not None:
            payload = json.dumps({"detail": problem}).encode()
            await send({"type": "http.response.start", "status": 422,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _problem(self, document_id: str | None, body: bytes) -> str | None:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return None  # Prefect answers malformed requests itself
        if not isinstance(request, dict) or not isinstance(request.get("data", {}), dict):
            return None
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                     base_url="http://prefect") as inner:
            data: dict[str, Any] = dict(request.get("data") or {})
            type_id = request.get("block_type_id")
            if document_id is not None:  # an edit: the saved block, with the edit merged as Prefect will
                saved = await inner.get(f"/api/block_documents/{document_id}", params={"include_secrets": "true"})
                if saved.status_code != 200:
                    return None
                current = saved.json()
                type_id = current["block_type_id"]
                if request.get("merge_existing_data", True):
                    data = {**(current.get("data") or {}), **data}
            if not type_id:
                return None
            block_type = await inner.get(f"/api/block_types/{type_id}")
            if block_type.status_code != 200:
                return None
            cls = self.classes.get(block_type.json().get("slug", ""))
        return None if cls is None else block_problem(cls, data)


def main() -> None:
    import uvicorn
    from prefect.server.api.server import create_app

    port = int(sys.argv[1])
    uvicorn.run(RefuseInvalidBlocks(create_app(final=True)), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
