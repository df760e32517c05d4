"""``s3://bucket/prefix`` URIs: parsed, normalized and checked against allowed roots."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

S3_SCHEME = "s3://"
# S3's bucket naming rules (3 to 63 characters: lower case, digits, dots, hyphens).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class BadURIError(ValueError):
    """A URI that names no valid location, or one outside what is allowed."""


def is_s3(text: str) -> bool:
    return text.strip().lower().startswith(S3_SCHEME)


@dataclass(frozen=True)
class S3URI:
    bucket: str
    key: str  # normalized: no leading or trailing "/", no empty, "." or ".." segment

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}" if self.key else f"{S3_SCHEME}{self.bucket}"

    def join(self, *parts: str) -> S3URI:
        key = "/".join(p for p in (self.key, *parts) if p)
        return S3URI(self.bucket, normalize_key(key, str(self)))

    def is_under(self, root: S3URI) -> bool:
        return self.bucket == root.bucket and (
            not root.key or self.key == root.key or self.key.startswith(root.key + "/")
        )

    def relative_to(self, root: S3URI) -> str:
        if not self.is_under(root):
            raise BadURIError(f"{self} is not under {root}")
        return self.key[len(root.key) :].lstrip("/")


def normalize_key(key: str, shown: str) -> str:
    """A key without empty segments; ``.``, ``..``, a NUL byte or a control character refused (S3 keeps
    ``..`` literally, but a root check on a key that a client or a proxy resolves would be fooled)."""
    if any(ord(c) < 0x20 or c == "\x7f" for c in key):
        raise BadURIError(f"{shown!r} contains a control character")
    segments = [s for s in key.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise BadURIError(f"{shown!r} has a '.' or '..' segment, which no key may have")
    return "/".join(segments)


def parse_s3(text: str) -> S3URI:
    """``s3://bucket/key``, percent-decoded; BadURIError naming what is wrong."""
    raw = text.strip()
    if not is_s3(raw):
        raise BadURIError(f"{text!r} is not an s3://bucket/prefix URI")
    parts = urllib.parse.urlsplit(raw)
    if parts.query or parts.fragment or raw.endswith(("?", "#")):
        raise BadURIError(f"{text!r}: an s3:// URI encodes '?' and '#' in a key as %3F and %23")
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise BadURIError(f"{text!r}: {bucket!r} is not a valid S3 bucket name")
    return S3URI(bucket, normalize_key(urllib.parse.unquote(parts.path), text))


def check_under(uri: S3URI, roots: list[S3URI], what: str, shown: str) -> S3URI:
    for root in roots:
        if uri.is_under(root):
            return uri
    allowed = ", ".join(str(r) for r in roots) or "none configured"
    raise BadURIError(f"{what} {shown!r} is outside the allowed roots ({allowed})")
