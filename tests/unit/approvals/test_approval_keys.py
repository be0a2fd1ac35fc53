"""Approver key files: made private, and refused when wrong, open or missing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sqlguard.approvals.keys import (
    KeyFileError,
    generate_keypair,
    load_private_key,
    load_public_key,
    same_key,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_and_load(tmp_path: Path) -> None:
    private_path, public_path = generate_keypair("dana", tmp_path / "keys")
    assert (private_path.name, public_path.name) == ("dana.key", "dana.pub")
    assert mode(private_path) == 0o600 and mode(public_path) == 0o644
    assert mode(tmp_path / "keys") == 0o700
    private = load_private_key(private_path)
    assert same_key(private.public_key(), load_public_key(public_path))


def test_private_key_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        private_path, _ = generate_keypair("dana", tmp_path)
    finally:
        os.umask(old)
    assert mode(private_path) == 0o600


def test_never_overwrites(tmp_path: Path) -> None:
    generate_keypair("dana", tmp_path)
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keypair("dana", tmp_path)


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "-x", "a b"])
def test_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(KeyFileError, match="approver name"):
        generate_keypair(name, tmp_path)


@pytest.mark.parametrize("open_mode", [0o640, 0o604, 0o644, 0o660])
def test_open_private_key_is_refused(tmp_path: Path, open_mode: int) -> None:
    private_path, _ = generate_keypair("dana", tmp_path)
    private_path.chmod(open_mode)
    with pytest.raises(KeyFileError, match=f"mode {open_mode:04o}.*chmod 600"):
        load_private_key(private_path)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key(tmp_path / "nobody.key")
    with pytest.raises(KeyFileError, match="does not exist"):
        load_public_key(tmp_path / "nobody.pub")


def test_swapped_files(tmp_path: Path) -> None:
    private_path, public_path = generate_keypair("dana", tmp_path)
    public_path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_private_key(public_path)
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_public_key(private_path)


def test_other_key_types_are_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private_path, public_path = tmp_path / "ec.key", tmp_path / "ec.pub"
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(KeyFileError, match="not an Ed25519 key"):
        load_private_key(private_path)
    with pytest.raises(KeyFileError, match="not an Ed25519 key"):
        load_public_key(public_path)


def test_passphrase_protected_key(tmp_path: Path) -> None:
    private_path, _ = generate_keypair("dana", tmp_path)
    key = load_private_key(private_path)
    encrypted = tmp_path / "locked.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    encrypted.chmod(0o600)
    with pytest.raises(KeyFileError, match="passphrase-protected"):
        load_private_key(encrypted)
