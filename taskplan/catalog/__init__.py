"""The catalog: Pinot table configs, schemas, cluster configs in a SQL database (SQLite or PostgreSQL)."""

from taskplan.catalog.catalog import Catalog
from taskplan.catalog.errors import (
    CatalogError,
    CatalogVersionError,
    SchemaNotFoundError,
    TableExistsError,
    TableNotFoundError,
    is_unavailable,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogVersionError",
    "SchemaNotFoundError",
    "TableExistsError",
    "TableNotFoundError",
    "is_unavailable",
]
