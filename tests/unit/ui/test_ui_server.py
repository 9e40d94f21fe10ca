"""What `kubekeep ui`'s server refuses when a block is saved (flows.cli.ui_server.block_problem)."""

from __future__ import annotations

from blocks import EncryptionKey, LocationProfile
from flows.cli.ui_server import block_problem


def test_an_empty_key_is_refused_with_the_reason_a_valid_one_is_not() -> None:
    problem = block_problem(EncryptionKey, {"passphrase": None, "key_file": None, "key_env": None})
    assert problem == ("the Kubekeep Encryption Key block is invalid: an encryption key needs a passphrase, a "
                       "key_file or a key_env; nothing was saved")
    assert block_problem(EncryptionKey, {"passphrase": "correct horse"}) is None
    assert block_problem(EncryptionKey, {"key_env": "KUBEKEEP_KEY"}) is None


def test_a_location_without_its_path_is_refused_and_references_are_left_to_prefect() -> None:
    assert "invalid" in (block_problem(LocationProfile, {"kind": "filesystem"}) or "")
    assert block_problem(LocationProfile, {"kind": "filesystem", "path": "/srv/backups"}) is None
    assert block_problem(LocationProfile, {"kind": {"$ref": {"block_document_id": "x"}}}) is None
