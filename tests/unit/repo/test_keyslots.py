"""Issue 14 item 10: KDF parameters of a key slot are bounded; a damaged slot is reported as damaged,
never as a wrong passphrase."""

from __future__ import annotations

import base64
import json
import time

import pytest

from kubekeep.repo.crypto import KdfParams
from kubekeep.repo.errors import KeySlotError, RepositoryError, WrongKeyError
from kubekeep.repo.storage import FilesystemStorage

from .conftest import PASSWORD, make_repo, open_repo


def _slot_key(storage: FilesystemStorage) -> str:
    [key] = [i.key for i in storage.list("keys/")]
    return key


def _rewrite(storage: FilesystemStorage, key: str, data: bytes) -> None:
    storage.delete(key)
    storage.put(key, data)


def test_absurd_kdf_parameters_are_refused_at_once(storage: FilesystemStorage) -> None:
    make_repo(storage)
    key = _slot_key(storage)
    slot = json.loads(storage.get(key))
    slot["kdf"].update(time_cost=40, memory_kib=1024 * 1024)
    slot.pop("checksum", None)  # a hostile writer would recompute it anyway
    _rewrite(storage, key, json.dumps(slot).encode())
    start = time.monotonic()
    with pytest.raises(KeySlotError, match="time_cost 40") as err:
        open_repo(storage)
    assert time.monotonic() - start < 2
    assert "wrong passphrase" not in str(err.value)


def test_kdf_parameters_are_bounded_when_a_slot_is_made() -> None:
    with pytest.raises(RepositoryError, match="memory"):
        KdfParams(time_cost=3, memory_kib=16 * 1024 * 1024)
    with pytest.raises(RepositoryError, match="time_cost"):
        KdfParams(time_cost=0)
    KdfParams()  # the defaults are in bounds
    KdfParams.cheap()


@pytest.mark.parametrize("damage", ["bitflip-wrapped", "bitflip-salt", "not-json", "bad-base64", "truncated"])
def test_a_damaged_slot_is_not_a_wrong_passphrase(storage: FilesystemStorage, damage: str) -> None:
    make_repo(storage)
    key = _slot_key(storage)
    raw = storage.get(key)
    slot = json.loads(raw)
    if damage == "bitflip-wrapped":
        wrapped = bytearray(base64.b64decode(slot["wrapped"]))
        wrapped[20] ^= 0x04
        slot["wrapped"] = base64.b64encode(bytes(wrapped)).decode()
        data = json.dumps(slot).encode()
    elif damage == "bitflip-salt":
        salt = bytearray(base64.b64decode(slot["kdf"]["salt"]))
        salt[3] ^= 0x80
        slot["kdf"]["salt"] = base64.b64encode(bytes(salt)).decode()
        data = json.dumps(slot).encode()
    elif damage == "not-json":
        data = b"\x00" * 10 + raw[10:]
    elif damage == "bad-base64":
        slot["wrapped"] = "%%%" + slot["wrapped"][3:]
        data = json.dumps(slot).encode()
    else:
        data = raw[: len(raw) // 2]
    _rewrite(storage, key, data)
    with pytest.raises(KeySlotError, match="damaged") as err:
        open_repo(storage)
    assert "wrong passphrase" not in str(err.value)
    assert key in str(err.value)


def test_one_damaged_slot_does_not_stop_another(storage: FilesystemStorage) -> None:
    repo = make_repo(storage)
    second = repo.add_passphrase("second passphrase", kdf=KdfParams.cheap())
    first = next(i.key for i in storage.list("keys/") if not i.key.endswith(second))
    _rewrite(storage, first, b"{garbage")
    open_repo(storage, passphrase="second passphrase")
    with pytest.raises(KeySlotError, match="damaged") as err:
        open_repo(storage, passphrase=PASSWORD)  # its slot is the damaged one
    assert "wrong passphrase" not in str(err.value)


def test_wrong_passphrase_is_still_called_that(storage: FilesystemStorage) -> None:
    make_repo(storage)
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        open_repo(storage, passphrase="nope")


def test_a_damaged_slot_can_be_removed(storage: FilesystemStorage) -> None:
    repo = make_repo(storage)
    second = repo.add_passphrase("second passphrase", kdf=KdfParams.cheap())
    first = next(i.key for i in storage.list("keys/") if not i.key.endswith(second))
    _rewrite(storage, first, b"{garbage")
    reopened = open_repo(storage, passphrase="second passphrase")
    with pytest.raises(RepositoryError, match="last key slot"):
        reopened.remove_key(second)
    reopened.remove_key(first.removeprefix("keys/"))
    assert [k.slot_id for k in reopened.list_keys()] == [second]
    with pytest.raises(WrongKeyError, match="wrong passphrase"):
        open_repo(storage, passphrase=PASSWORD)
