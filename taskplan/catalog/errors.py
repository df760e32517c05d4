"""Catalog errors; each names the object it is about."""

from __future__ import annotations


class CatalogError(Exception):
    """Base of the catalog's errors."""


class TableNotFoundError(CatalogError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"table {name} does not exist")
        self.name = name


class TableExistsError(CatalogError):
    def __init__(self, name: str) -> None:
        super().__init__(f"table {name} already exists")
        self.name = name


class SchemaNotFoundError(CatalogError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"schema {name} does not exist")
        self.name = name
