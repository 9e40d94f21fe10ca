"""A block the Prefect UI saved without checking it (docs/ui.md, Blocks) fails the run with one sentence
that names the block, the reason and the fix, instead of Prefect's "try validate=False" advice."""

from __future__ import annotations

import uuid

import pytest

from blocks import BlockError, EncryptionKey, LocationProfile, load_blocks


def test_an_invalid_saved_block_is_named_with_its_reason(prefect_api: str) -> None:
    name = f"empty-{uuid.uuid4().hex[:6]}"
    # what the v2 UI does: the document is stored without running the block's validators
    EncryptionKey.model_construct(passphrase=None, key_file=None, key_env=None, cheap_kdf=False).save(name)
    LocationProfile(kind="filesystem", path="/tmp/unused").save(f"{name}-loc")
    with pytest.raises(BlockError) as err:
        load_blocks(f"{name}-loc", name, None)
    message = str(err.value)
    assert message == (f"the encryption key block {name!r} is invalid: an encryption key needs a passphrase, a "
                       "key_file or a key_env; edit it in the Prefect UI under Blocks")
    assert "validate=False" not in message and "\n" not in message


def test_a_missing_block_says_how_to_create_it(prefect_api: str) -> None:
    with pytest.raises(BlockError, match=r"^no location block named 'nowhere': create it in the Prefect UI "
                                         r"\(Blocks → \+ → Kubekeep Location Profile\)"):
        load_blocks("nowhere", "default", None)
