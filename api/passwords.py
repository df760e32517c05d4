"""Principals' passwords: in clear, or as salted argon2id hashes (``taskplan hash-password``).

A password property whose value starts with ``$argon2`` is a hash in the PHC string format argon2-cffi
writes (``$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>``); anything else is the password in clear. Clear
passwords are compared with ``hmac.compare_digest``; hashes are verified by argon2-cffi, whose own check
is constant-time.

Verifying an argon2 hash costs about 50 ms of CPU and 64 MiB by design, and a browser or a script sends
the credentials with every request. So a verified password is remembered per principal as an HMAC with a
key drawn when the process starts (never the password itself): the next request with the same password
costs one HMAC. A wrong password, and an unknown user, always pay a full verification (the unknown user
against a dummy hash made at start), so the answer time does not tell which user names exist.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

HASH_PREFIX = "$argon2"
_HASHER = PasswordHasher()  # argon2-cffi's defaults: argon2id, RFC 9106's low-memory profile


def hash_password(password: str) -> str:
    """A salted argon2id hash of the password, for a principal's password property."""
    return _HASHER.hash(password)


def is_hash(value: str) -> bool:
    return value.startswith(HASH_PREFIX)


def check_hash(value: str) -> None:
    """ValueError unless ``value`` is an argon2 hash (its parameters parse; no costly verification)."""
    try:
        extract_parameters(value)
    except InvalidHashError:
        raise ValueError("not a valid argon2 hash (make one with `taskplan hash-password`)") from None


class PasswordCheck:
    """The stored password of one principal (clear or hashed), checked in constant time."""

    def __init__(self, stored: str) -> None:
        self._stored = stored
        self._hashed = is_hash(stored)
        if self._hashed:
            check_hash(stored)
        self._key = secrets.token_bytes(32)
        self._verified: bytes | None = None  # HMAC of the last password that verified
        self._lock = threading.Lock()

    @property
    def hashed(self) -> bool:
        return self._hashed

    @property
    def stored(self) -> str:
        return self._stored

    def __repr__(self) -> str:  # never show the password or its hash
        return f"PasswordCheck(hashed={self._hashed})"

    def matches(self, password: str) -> bool:
        given = password.encode()
        if not self._hashed:
            return hmac.compare_digest(self._stored.encode(), given)
        mac = hmac.new(self._key, given, hashlib.sha256).digest()
        with self._lock:
            remembered = self._verified
        if remembered is not None and hmac.compare_digest(remembered, mac):
            return True
        try:
            _HASHER.verify(self._stored, password)
        except (VerificationError, InvalidHashError):
            return False
        with self._lock:
            self._verified = mac
        return True


class UnknownUser:
    """What an unknown user name is checked against: as costly as a known one's wrong password (a dummy
    hash with the parameters of the principals' own, when any is hashed)."""

    def __init__(self, like: str | None) -> None:
        if like is None:
            stored = "\0"
        else:
            hasher = PasswordHasher.from_parameters(extract_parameters(like))
            stored = hasher.hash(secrets.token_hex(16))
        self._check = PasswordCheck(stored)

    @classmethod
    def like(cls, checks: list[PasswordCheck]) -> UnknownUser:
        hashed = [c.stored for c in checks if c.hashed]
        return cls(hashed[0] if hashed else None)

    def matches(self, password: str) -> bool:
        self._check.matches(password)
        return False
