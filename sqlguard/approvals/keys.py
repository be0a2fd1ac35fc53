"""Approvers' Ed25519 key files: made by ``sqlguard keygen``, read by ``approve`` and the sidecar.

An approver's private key stays on the approver's machine (PKCS#8 PEM, mode 0600); the
sidecar's config lists only public keys (SubjectPublicKeyInfo PEM). Like ssh, a private key
that others may read is refused: a key someone else could have copied proves nothing.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,62}")


class KeyFileError(ValueError):
    """A key file is missing, unreadable, of the wrong kind or too open; says what to do."""


def generate_keypair(name: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``NAME.key`` (private, 0600) and ``NAME.pub`` in ``out_dir``; never overwrite."""
    if not _NAME.fullmatch(name):
        raise KeyFileError(
            f"approver name {name!r} must be 1-63 letters, digits or _ . @ - "
            "(not starting with . @ or -)"
        )
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path, public_path = out_dir / (name + PRIVATE_SUFFIX), out_dir / (name + PUBLIC_SUFFIX)
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; remove it or choose another --name/--out")
    key = Ed25519PrivateKey.generate()
    _write_new(private_path, _private_pem(key), 0o600)
    _write_new(public_path, public_pem(key.public_key()), 0o644)
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path``, refused if group or others may read it."""
    data = _read(path)
    mode = path.stat().st_mode
    if mode & 0o077:
        raise KeyFileError(
            f"private key {path} is accessible by others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        problem = "is passphrase-protected; sqlguard reads unencrypted key files (mode 0600)"
        raise KeyFileError(f"{path} {problem}") from None
    except ValueError:
        problem = "is not a PEM private key (make one with sqlguard keygen)"
        raise KeyFileError(f"{path} {problem}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise _not_ed25519(key, path)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in ``path`` (PEM, as ``sqlguard keygen`` writes it)."""
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyFileError(
            f"{path} is not a PEM public key (use the .pub file sqlguard keygen wrote)"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise _not_ed25519(key, path)
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    """The PEM text of a public key, as written to ``NAME.pub``."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def same_key(a: Ed25519PublicKey, b: Ed25519PublicKey) -> bool:
    """Are two public keys the same key? (The key objects do not compare by value.)"""
    return public_pem(a) == public_pem(b)


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start: no moment where a private key is 0644."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), mode)  # the umask may have removed bits we want (0644)
        file.write(data)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None


def _not_ed25519(key: object, path: Path) -> KeyFileError:
    return KeyFileError(
        f"{path} holds a {type(key).__name__.lstrip('_')}, not an Ed25519 key "
        "(make one with sqlguard keygen)"
    )
