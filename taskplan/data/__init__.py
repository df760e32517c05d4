"""The data plane: segments as Parquet files in a deep store, written and read with DuckDB."""
