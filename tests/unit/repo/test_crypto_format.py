from __future__ import annotations

import pytest

from kubekeep.repo.crypto import (
    FLAG_RAW,
    BlobType,
    Compressor,
    Envelope,
    KdfParams,
    LocalKeyWrapper,
    make_external_slot,
    make_passphrase_slot,
    open_external_slot,
    open_passphrase_slot,
)
from kubekeep.repo.errors import IntegrityError, UnsupportedFormatError
from kubekeep.repo.format import (
    BlobEntry,
    decode_index,
    decode_pack_header,
    encode_index,
    encode_pack_header,
    parse_config,
)
from kubekeep.repo.index import Index


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "chacha20-poly1305"])
def test_envelope_roundtrip_and_binding(cipher: str) -> None:
    env = Envelope(cipher, b"k" * 32)
    ident = b"i" * 32
    sealed = env.seal(BlobType.DATA, ident, FLAG_RAW, b"payload")
    assert env.open(BlobType.DATA, ident, sealed, what="x") == (FLAG_RAW, b"payload")
    with pytest.raises(IntegrityError, match="authentication failed"):
        env.open(BlobType.TREE, ident, sealed, what="x")  # wrong type
    with pytest.raises(IntegrityError):
        env.open(BlobType.DATA, b"j" * 32, sealed, what="x")  # wrong id
    for pos in (0, 12, len(sealed) - 1):
        damaged = bytearray(sealed)
        damaged[pos] ^= 1
        with pytest.raises(IntegrityError):
            env.open(BlobType.DATA, ident, bytes(damaged), what="x")
    with pytest.raises(IntegrityError, match="truncated"):
        env.open(BlobType.DATA, ident, sealed[:10], what="x")
    with pytest.raises(IntegrityError):
        Envelope(cipher, b"z" * 32).open(BlobType.DATA, ident, sealed, what="x")


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "chacha20-poly1305"])
def test_authenticate_binds_type_id_bytes_and_key_like_open(cipher: str) -> None:
    """What a replica copy relies on instead of decompressing and hashing every blob."""
    env = Envelope(cipher, b"k" * 32)
    ident = b"i" * 32
    sealed = env.seal(BlobType.DATA, ident, 1, b"compressed payload")
    env.authenticate(BlobType.DATA, ident, sealed, what="x")
    wrong = [(env, BlobType.TREE, ident, sealed), (env, BlobType.DATA, b"j" * 32, sealed),
             (Envelope(cipher, b"z" * 32), BlobType.DATA, ident, sealed)]
    for pos in (0, 12, len(sealed) - 1):
        damaged = bytearray(sealed)
        damaged[pos] ^= 1
        wrong.append((env, BlobType.DATA, ident, bytes(damaged)))
    for envelope, blob_type, blob_id, data in wrong:
        with pytest.raises(IntegrityError, match="authentication failed"):
            envelope.authenticate(blob_type, blob_id, data, what="x")
    with pytest.raises(IntegrityError, match="truncated"):
        env.authenticate(BlobType.DATA, ident, sealed[:10], what="x")


def test_compressor_stores_incompressible_raw() -> None:
    import os

    comp = Compressor(3)
    flag, out = comp.pack(b"a" * 10000)
    assert flag == 1 and len(out) < 100
    assert comp.unpack(flag, bytes(out), what="x") == b"a" * 10000
    rnd = os.urandom(10000)
    assert comp.pack(rnd) == (FLAG_RAW, rnd)


def test_passphrase_slot() -> None:
    master, rid = b"m" * 32, b"r" * 32
    slot = make_passphrase_slot(master, rid, "pw", KdfParams.cheap())
    assert open_passphrase_slot(slot, rid, "pw") == master
    assert open_passphrase_slot(slot, rid, "wrong") is None
    assert open_passphrase_slot(slot, b"s" * 32, "pw") is None  # bound to the repository


def test_external_slot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keyfile = tmp_path / "key"
    keyfile.write_text(LocalKeyWrapper.generate_key())
    wrapper = LocalKeyWrapper.from_file(keyfile)
    slot = make_external_slot(b"m" * 32, b"r" * 32, wrapper)
    assert open_external_slot(slot, b"r" * 32, wrapper) == b"m" * 32
    assert open_external_slot(slot, b"r" * 32, LocalKeyWrapper(b"x" * 32)) is None


def test_pack_header_and_index_roundtrip() -> None:
    entries = [BlobEntry(1, bytes([i]) * 32, 0, 100 + i, 200) for i in range(3)]
    decoded = decode_pack_header(encode_pack_header(entries), what="p")
    assert [e.offset for e in decoded] == [0, 100, 201]
    packs = {b"p" * 32: decoded, b"q" * 32: decoded[:1]}
    assert dict(decode_index(encode_index(packs), what="i")) == packs
    with pytest.raises(IntegrityError):
        list(decode_index(b"nope", what="i"))
    index = Index()
    index.add_pack(b"p" * 32, decoded)
    loc = index.lookup(bytes([2]) * 32)
    assert loc is not None and loc.pack_id == b"p" * 32 and loc.entry == decoded[2]
    assert index.lookup(b"z" * 32) is None


def test_config_version_is_checked() -> None:
    with pytest.raises(UnsupportedFormatError, match="version 99"):
        parse_config(b'{"format": "kubekeep-repository", "version": 99}')
    with pytest.raises(UnsupportedFormatError):
        parse_config(b"garbage")
