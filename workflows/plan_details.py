"""What the Temporal Web UI and ``temporal workflow describe`` show of a plan: its static summary and details
(set at start) and its current details (Markdown, kept up to date by the plan), and the one-line summaries of
its subtask activities and waits. Pure functions of the plan's state: deterministic, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from taskplan.models.plan import PlanSource, PlanStatus, TaskPlan
from taskplan.models.task import TaskState

MAX_LINE = 200  # a summary is one line; longer names are cut
MAX_ERROR = 500
# Subtask config keys naming what a subtask works on, most telling first (a file, else segments).
SUBJECT_KEYS = (("inputFileURI", "file"), ("segmentName", "segment"))


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _code(text: str, limit: int = MAX_LINE) -> str:
    """Inline Markdown code: the value shown as typed, never read as Markdown."""
    return "`" + _cut(text, limit).replace("`", "'") + "`"


def static_summary(table_name_with_type: str, task_type: str) -> str:
    return f"{task_type} plan for {table_name_with_type}"


def static_details(
    plan_id: str, table_name_with_type: str, task_type: str, source: PlanSource, properties: Mapping[str, str]
) -> str:
    """The plan's start, in Markdown: table, task type, source, plan id and the trigger's task configs."""
    lines = [
        f"**Table:** {_code(table_name_with_type)}",
        f"**Task type:** {_code(task_type)}",
        f"**Source:** {source.value}",
        f"**Plan id:** {_code(plan_id)}",
        "",
        "**Task configs:**",
        "",
    ]
    configs = [f"- {_code(key, 100)} = {_code(value)}" for key, value in sorted(properties.items())]
    lines += configs or ["- none"]
    return "\n".join(lines)


def subtask_summary(subtask_name: str, configs: Mapping[str, str]) -> str:
    """One line for a subtask activity: what it works on (its file or segments), then its name."""
    for key, what in SUBJECT_KEYS:
        value = configs.get(key)
        if value:
            names = value.split(",")
            if what == "segment" and len(names) > 1:
                return _cut(f"{len(names)} segments {names[0]}..{names[-1]} ({subtask_name})", MAX_LINE)
            return _cut(f"{what} {value} ({subtask_name})", MAX_LINE)
    return _cut(f"subtask {subtask_name}", MAX_LINE)


def current_details(
    plan: TaskPlan,
    *,
    batch_state: TaskState | None,
    batch_done: int,
    batch_failed: int,
    blocked_reason: str | None,
    last_error: str | None,
    run_number: int = 0,
) -> str:
    """The plan now, in Markdown: status, inputs processed / to process, the batch and its state, why it is
    blocked, the last error."""
    unit = plan.input_unit or "inputs"
    # Continue-as-new carries no static summary: every run names its plan here.
    lines = [f"**Plan:** {_code(plan.plan_id)} (run {run_number + 1})"]
    lines += [f"**Status:** {plan.status.value}", f"**Message:** {_code(plan.status_message or '-', 300)}"]
    if plan.inputs_to_process:
        pct = 100 * plan.inputs_processed // max(1, plan.inputs_to_process)
        done = f"{plan.inputs_processed} / {plan.inputs_to_process} {unit}"
        lines.append(f"**Progress:** {done} processed ({pct}%)")
    else:
        lines.append(f"**Progress:** {plan.inputs_processed} {unit} processed")
    if plan.inputs_being_processed:
        lines.append(f"**In the running batch:** {plan.inputs_being_processed} {unit}")
    last = plan.batches[-1] if plan.batches else None
    if last is not None:
        state = batch_state if batch_state is not None and last.task_state is TaskState.IN_PROGRESS else None
        shown = (state or last.task_state).value
        line = f"**Batch:** {last.batch_sequence} {_code(last.submitted_task_name)} {shown}"
        if last.task_state is TaskState.IN_PROGRESS:
            line += f", {batch_done} of {last.num_subtasks} subtasks ended, {batch_failed} failed"
        lines.append(line)
    lines.append(f"**Batches:** {plan.num_batches} run, {plan.num_failed_batches} failed")
    if blocked_reason and plan.status.is_active:
        lines.append(f"**Blocked:** {_code(blocked_reason, 300)}")
    if last_error:
        lines.append(f"**Last error:** {_code(last_error, MAX_ERROR)}")
    if plan.status is PlanStatus.ABORTING:
        lines.append("*Aborting: no new batch; the running batch may finish.*")
    return "\n\n".join(lines)
