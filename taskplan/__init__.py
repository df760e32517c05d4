"""taskplan: durable multi-batch background-task orchestration for analytics tables, on Temporal."""

__version__ = "0.1.0"
