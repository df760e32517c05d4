"""The catalog's SQL tables (SQLAlchemy Core). Changes go through an Alembic migration in migrations/."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

tables = Table(
    "tp_tables",
    metadata,
    Column("name_with_type", String(200), primary_key=True),
    Column("raw_name", String(150), nullable=False, index=True),
    Column("table_type", String(16), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

schemas = Table(
    "tp_schemas",
    metadata,
    Column("name", String(150), primary_key=True),
    Column("schema_json", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

cluster_configs = Table(
    "tp_cluster_configs",
    metadata,
    Column("name", String(300), primary_key=True),
    Column("value", Text, nullable=False),
)

# Small named states, e.g. a task type's queue state (STOPPED / RESUMED).
states = Table(
    "tp_states",
    metadata,
    Column("scope", String(100), primary_key=True),
    Column("name", String(300), primary_key=True),
    Column("value", Text, nullable=False),
)

# Segment metadata, Pinot style. Which segments a reader sees is decided by the lineage below.
segments = Table(
    "tp_segments",
    metadata,
    Column("table_name", String(200), primary_key=True),
    Column("segment_name", String(300), primary_key=True),
    Column("status", String(16), nullable=False),  # IN_PROGRESS (consuming) or DONE
    Column("total_docs", BigInteger, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("crc", String(64), nullable=False),
    Column("time_column", String(128)),
    Column("start_time", BigInteger),
    Column("end_time", BigInteger),
    Column("created_ms", BigInteger, nullable=False),
    Column("committed_ms", BigInteger),
    Column("file_name", String(400), nullable=False),
    Column("source", Text),
    Column("custom_json", Text, nullable=False),
)

# Pinot's segment lineage: an atomic replacement of segments_from by segments_to.
segment_lineage = Table(
    "tp_segment_lineage",
    metadata,
    Column("table_name", String(200), primary_key=True),
    Column("lineage_id", String(100), primary_key=True),
    Column("state", String(16), nullable=False),  # IN_PROGRESS, COMPLETED, REVERTED
    Column("owner", String(300), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

lineage_segments = Table(
    "tp_lineage_segments",
    metadata,
    Column("table_name", String(200), primary_key=True),
    Column("lineage_id", String(100), primary_key=True),
    Column("role", String(4), primary_key=True),  # "from" or "to"
    Column("segment_name", String(300), primary_key=True),
    # Whether a segment is hidden is looked up by its name (every segment read): without this index, a
    # lookup reads every lineage row of the table, and a walk over the table grows with its lineage.
    Index("ix_tp_lineage_segments_segment", "table_name", "segment_name"),
)

# Input files ingested into a table (FileIngestionTask): each at most once per fingerprint.
processed_files = Table(
    "tp_processed_files",
    metadata,
    Column("table_name", String(200), primary_key=True),
    Column("file_uri", String(1000), primary_key=True),
    Column("fingerprint", String(128), nullable=False),
    Column("segment_name", String(300), nullable=False),
    Column("processed_ms", BigInteger, nullable=False),
)

# Segments exported per target (DataExportTask): each exactly once.
exported_segments = Table(
    "tp_exported_segments",
    metadata,
    Column("table_name", String(200), primary_key=True),
    Column("target", String(500), primary_key=True),
    Column("segment_name", String(300), primary_key=True),
    Column("total_docs", BigInteger, nullable=False),
    Column("exported_ms", BigInteger, nullable=False),
)

# Pinot's per-table task metadata (a ZNRecord per table and task type in Pinot): the watermarks of
# MergeRollupTask (``watermarkMap``, one per merge level) and RealtimeToOfflineSegmentsTask (``watermarkMs``).
task_metadata = Table(
    "tp_task_metadata",
    metadata,
    Column("table_name", String(200), primary_key=True),
    Column("task_type", String(100), primary_key=True),
    Column("metadata_json", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

# Pinot's task metadata for the batches of plans (a plan runs its batches in its own workflow history):
# one row per batch, written by the plan's controller when the batch starts and when it ends.
tasks = Table(
    "tp_tasks",
    metadata,
    Column("task_name", String(200), primary_key=True),
    Column("task_type", String(100), nullable=False, index=True),
    Column("table_name", String(200), nullable=False, index=True),
    Column("plan_id", String(400), nullable=False),
    Column("batch_sequence", BigInteger, nullable=False),
    Column("state", String(16), nullable=False, index=True),  # IN_PROGRESS, then COMPLETED / FAILED / STOPPED
    Column("num_subtasks", BigInteger, nullable=False),
    Column("num_failed", BigInteger, nullable=False),
    Column("inputs_in_batch", BigInteger, nullable=False),
    Column("submitted_ms", BigInteger, nullable=False),
    Column("finished_ms", BigInteger),
    Column("message", Text, nullable=False),
    Column("batch_json", Text, nullable=False),  # the generated batch: subtask configs, options
    Column("result_json", Text),  # once ended: the batch's result and its subtask reports
    UniqueConstraint("plan_id", "batch_sequence", name="uq_tasks_plan_batch"),
)

# The latest snapshot of each plan (without its batches): written when the plan is started, by its
# controller when a batch ends and when the plan ends (before its workflow closes), by the API when it is
# aborted, and by the controller's orchestration poll for a plan ended at the Temporal level. The
# active-plans listing is one query over these (a plan itself is in Temporal).
plan_snapshots = Table(
    "tp_plan_snapshots",
    metadata,
    Column("plan_id", String(400), primary_key=True),
    Column("table_name", String(200), nullable=False, index=True),
    Column("task_type", String(100), nullable=False, server_default=""),
    Column("status", String(16), nullable=False, index=True, server_default="ACTIVE"),
    Column("updated_ms", BigInteger, nullable=False),
    Column("plan_json", Text, nullable=False),
)

# Deep-store objects of dropped tables still to be deleted: recorded in the drop's own transaction, cleared
# by the API once its deletes went through, else retried by the segment upkeep (taskplan/data/deletions.py).
# ``keys_json``: the objects' keys, relative to ``store_uri`` (the deep store at the drop): each segment's
# object named at the drop (a remote store), or the directory the drop moved the table's files to (a local
# one, a key ending in ``/``). ``table_created_ms`` is the dropped incarnation.
pending_deletions = Table(
    "tp_pending_deletions",
    metadata,
    Column("deletion_id", String(32), primary_key=True),
    Column("table_name", String(200), nullable=False, index=True),
    Column("table_created_ms", BigInteger, nullable=False),
    Column("dropped_ms", BigInteger, nullable=False),
    Column("store_uri", String(1000), nullable=False),
    Column("keys_json", Text, nullable=False),
    Column("attempts", BigInteger, nullable=False, server_default="0"),
    Column("last_error", Text),
)
