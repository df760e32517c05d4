"""Authentication and table-level authorization, as Pinot's BasicAuthAccessControl does it.

Principals come from properties::

    controller.admin.access.control.principals=admin,reader
    controller.admin.access.control.principals.admin.password=...        # or a hash: taskplan hash-password
    controller.admin.access.control.principals.reader.password=...
    controller.admin.access.control.principals.reader.tables=myTable,otherTable   # raw names; default all
    controller.admin.access.control.principals.reader.permissions=READ            # default all four

With no principals configured the API is open and serves loopback only (see api/server.py). Cluster-wide
actions and reads (cluster configs, metrics, schedules of every table) need a principal that is not
restricted to tables. To a principal restricted to tables, any other table answers exactly as a missing one
does (``require_table``), so its name cannot be probed. Table names reach these checks parsed once
(``taskplan.names.TableRef``): nothing here strips a type suffix. Passwords, in clear or as argon2 hashes
(api/passwords.py), are compared in constant time and never logged or returned.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request

from taskplan.api.errors import ApiError
from taskplan.api.passwords import PasswordCheck, UnknownUser
from taskplan.catalog import TableNotFoundError
from taskplan.names import TableRef
from taskplan.settings import PRINCIPALS, Settings


class Permission(StrEnum):
    READ = "READ"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True)
class Principal:
    name: str
    password: PasswordCheck | None  # None: the open API's anonymous principal
    tables: frozenset[str] | None  # raw table names; None = every table
    permissions: frozenset[Permission]

    def __repr__(self) -> str:  # never show the password
        return f"Principal({self.name!r}, tables={self.tables}, permissions={sorted(self.permissions)})"

    def sees(self, table: TableRef) -> bool:
        """Whether the table is one of this principal's tables (whatever it may do to it)."""
        return self.tables is None or table.raw in self.tables

    def may(self, permission: Permission, table: TableRef | None = None) -> bool:
        """May do this to the table, or cluster-wide (only an unrestricted principal) when table is None."""
        if permission not in self.permissions:
            return False
        return self.tables is None if table is None else self.sees(table)


class AccessControl:
    def __init__(self, principals: Iterable[Principal]) -> None:
        self._principals = {p.name: p for p in principals}
        # An unknown user costs what a known one's wrong password costs (an argon2 verification when any
        # password is hashed), so answer times do not tell which names exist.
        self._unknown = UnknownUser.like([p.password for p in self._principals.values() if p.password])

    @property
    def enabled(self) -> bool:
        return bool(self._principals)

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessControl:
        names = [n.strip() for n in (settings.property(PRINCIPALS) or "").split(",") if n.strip()]
        principals = []
        for name in names:
            prefix = f"{PRINCIPALS}.{name}."
            password = settings.property(prefix + "password")
            if not password:
                raise ValueError(f"principal {name!r} has no {prefix}password")
            tables = settings.property(prefix + "tables")
            permissions = settings.property(prefix + "permissions")
            try:
                perms = (
                    frozenset(Permission(p.strip().upper()) for p in permissions.split(",") if p.strip())
                    if permissions
                    else frozenset(Permission)
                )
            except ValueError as exc:
                raise ValueError(f"principal {name!r}: {exc}; use READ, CREATE, UPDATE, DELETE") from None
            try:
                check = PasswordCheck(password)
            except ValueError as exc:  # the message never holds the value
                raise ValueError(f"principal {name!r}: {prefix}password: {exc}") from None
            principals.append(
                Principal(
                    name=name,
                    password=check,
                    tables=frozenset(t.strip() for t in tables.split(",") if t.strip()) if tables else None,
                    permissions=perms,
                )
            )
        return cls(principals)

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("basic "):
            raise ApiError(401, "authentication required: send HTTP Basic credentials")
        try:
            user, _, password = (
                base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, "malformed Basic credentials") from None
        principal = self._principals.get(user)
        # Check even for unknown users, so timing does not reveal which names exist.
        checker = principal.password if principal is not None else None
        if principal is None or checker is None:
            self._unknown.matches(password)
            raise ApiError(401, "invalid credentials")
        if not checker.matches(password):
            raise ApiError(401, "invalid credentials")
        return principal


OPEN = Principal(name="anonymous", password=None, tables=None, permissions=frozenset(Permission))


def current_principal(request: Request) -> Principal:
    access: AccessControl = request.app.state.access
    if not access.enabled:
        return OPEN
    return access.authenticate(request.headers.get("authorization"))


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(principal: Principal, permission: Permission, table: TableRef | None = None) -> None:
    """403 unless the principal may do this (to this table, or cluster-wide when table is None).

    For acting on a table that exists, use ``require_table``; this one suits creating one (the answer does
    not depend on whether the name exists).
    """
    if not principal.may(permission, table):
        where = f"table {table.name}" if table else "the whole cluster"
        raise ApiError(403, f"principal {principal.name} lacks {permission.value} permission on {where}")


def require_table(
    principal: Principal, permission: Permission, table: TableRef, *, missing: Exception | None = None
) -> None:
    """Like ``require`` for an existing table; call it before looking the table up.

    A table that is not one of the principal's answers as a missing one: ``missing`` (by default
    TableNotFoundError of the name as the request gave it), whether it exists or not. A table the principal
    sees but may not act on this way is a 403.
    """
    if not principal.sees(table):
        raise missing if missing is not None else TableNotFoundError(table.name)
    require(principal, permission, table)


def require_permission(principal: Principal, permission: Permission) -> None:
    """403 unless the principal holds the permission at all (for resources of no single table)."""
    if permission not in principal.permissions:
        raise ApiError(403, f"principal {principal.name} lacks {permission.value} permission")


def may_read_all(principal: Principal, tables: Iterable[TableRef]) -> bool:
    """Whether the principal may read every one of these tables; none known: only if unrestricted."""
    refs = list(tables)
    if not refs:
        return principal.tables is None and Permission.READ in principal.permissions
    return all(principal.may(Permission.READ, t) for t in refs)
