"""The plan page (GET /ui) as HTML: server-rendered, a little vanilla JavaScript (refresh, abort, stop a
batch), no third-party code. Pure functions of what the route read; every value goes through ``esc`` (or
``quote`` for a URL part), so nothing a plan, table or error carries is read as markup (tested with
hostile names).
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from taskplan.models.plan import TaskPlan
from taskplan.models.task import BatchDetails, SubtaskRecord, TaskState

REFRESH_MS = 2000
MAX_SAMPLES = 5


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Console:
    """Where the Temporal Web UI is, for the links to each plan's workflow."""

    temporal_web_url: str
    namespace: str

    def plan_link(self, plan: TaskPlan) -> str:
        """The plan's runs in the Temporal Web UI (a long plan continued as new has several)."""
        query = urlencode({"query": f'TaskPlanId="{plan.plan_id}"'})
        base = self.temporal_web_url.rstrip("/")
        return f"{base}/namespaces/{quote(self.namespace, safe='')}/workflows?{query}"


@dataclass(frozen=True)
class Steering:
    """What the principal may do to a plan: the buttons shown."""

    abort: bool
    stop_batch: bool


@dataclass(frozen=True)
class PlanView:
    plan: TaskPlan
    steering: Steering
    batches: Sequence[BatchDetails] = ()  # the recent batches read in full (failures, row counters)


# ---------------------------------------------------------------- figures


def progress(plan: TaskPlan, now_ms: int) -> tuple[float | None, float | None, float | None]:
    """(fraction done or None when unknown, rate in inputs per second, seconds left or None)."""
    elapsed_s = max(0.001, ((plan.finished_at_ms or now_ms) - plan.created_at_ms) / 1000)
    rate = plan.inputs_processed / elapsed_s if plan.created_at_ms else 0.0
    if not plan.inputs_to_process:
        return None, rate, None
    fraction = min(1.0, plan.inputs_processed / plan.inputs_to_process)
    left = max(0, plan.inputs_to_process - plan.inputs_processed)
    eta = None if not plan.status.is_active or rate <= 0 else left / rate
    return fraction, rate, eta


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def _time(ms: int | None) -> str:
    return "-" if not ms else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def _bar(fraction: float | None) -> str:
    if fraction is None:
        return '<div class="bar unknown" title="total not known"><span style="width:100%"></span></div>'
    pct = round(fraction * 100, 1)
    return f'<div class="bar" title="{pct}%"><span style="width:{pct}%"></span><em>{pct}%</em></div>'


def _status(status: str) -> str:
    return f'<span class="st st-{esc(status.lower())}">{esc(status)}</span>'


def _button(label: str, method: str, url: str, confirm: str, test_id: str) -> str:
    return (
        f'<button data-method="{esc(method)}" data-url="{esc(url)}" data-confirm="{esc(confirm)}" '
        f'data-testid="{esc(test_id)}">{esc(label)}</button>'
    )


def _temporal_link(console: Console, plan: TaskPlan, label: str) -> str:
    return f'<a href="{esc(console.plan_link(plan))}" target="_blank" rel="noopener">{esc(label)}</a>'


def _table(kind: str, head: str, rows: list[str]) -> str:
    body = "".join(rows)
    return f'<table class="{kind}" data-testid="{kind}"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _abort_button(plan: TaskPlan) -> str:
    return _button(
        "Abort",
        "DELETE",
        f"/tasks/taskPlans/{quote(plan.plan_id, safe='')}",
        f"Abort plan {plan.plan_id}?",
        "abort",
    )


def _pause_button(plan: TaskPlan) -> str:
    verb = "resume" if plan.paused else "pause"
    return _button(
        verb.capitalize(),
        "PUT",
        f"/tasks/taskPlans/{quote(plan.plan_id, safe='')}/{verb}",
        f"{verb.capitalize()} plan {plan.plan_id}?",
        verb,
    )


# ---------------------------------------------------------------- pages


def plans_page(
    active: Sequence[TaskPlan],
    recent: Sequence[TaskPlan],
    console: Console,
    steer: Mapping[str, Steering],
    now_ms: int,
) -> str:
    """Active and recent plans, grouped by table and task type."""
    body = ["<h1>Task plans</h1>", "<h2>Active</h2>", _plan_table(active, console, steer, now_ms, "active")]
    body += ["<h2>Recently ended</h2>", _plan_table(recent, console, {}, now_ms, "recent")]
    return _page("Task plans", "\n".join(body), now_ms)


def _plan_table(
    plans: Sequence[TaskPlan], console: Console, steer: Mapping[str, Steering], now_ms: int, kind: str
) -> str:
    if not plans:
        return f'<p class="none" data-testid="no-{kind}">none</p>'
    rows = []
    groups: dict[tuple[str, str], list[TaskPlan]] = {}
    for plan in plans:
        groups.setdefault((plan.table_name_with_type, plan.task_type), []).append(plan)
    for (table, task_type), group in sorted(groups.items()):
        rows.append(f'<tr class="group"><th colspan="9">{esc(table)} &middot; {esc(task_type)}</th></tr>')
        for plan in group:
            fraction, rate, eta = progress(plan, now_ms)
            unit = plan.input_unit or "inputs"
            todo = f" / {plan.inputs_to_process}" if plan.inputs_to_process else ""
            steering = steer.get(plan.plan_id)
            action = _abort_button(plan) if steering and steering.abort and plan.status.is_active else ""
            link = f"/ui?{urlencode({'plan': plan.plan_id})}"
            rows.append(
                f'<tr data-plan="{esc(plan.plan_id)}">'
                f'<td class="pid"><a href="{esc(link)}">{esc(plan.plan_id)}</a></td>'
                f"<td>{_status(plan.status.value)}</td>"
                f'<td class="progress">{_bar(fraction)}</td>'
                f'<td class="num" data-testid="processed">{plan.inputs_processed}{todo} {esc(unit)}</td>'
                f"<td class=num>{(rate or 0) * 60:.1f} {esc(unit)}/min</td>"
                f"<td class=num>ETA {_duration(eta)}</td>"
                f"<td class=num>{plan.num_batches} batches, {plan.num_failed_batches} failed</td>"
                f'<td class="msg">{esc(plan.status_message)}</td>'
                f"<td class=act>{_temporal_link(console, plan, 'Temporal')} {action}</td>"
                "</tr>"
            )
    head = (
        "<tr><th>plan</th><th>status</th><th>progress</th><th>processed</th><th>rate</th><th>ETA</th>"
        "<th>batches</th><th>message</th><th></th></tr>"
    )
    return _table(kind, head, rows)


def plan_page(view: PlanView, console: Console, now_ms: int) -> str:
    plan = view.plan
    fraction, rate, eta = progress(plan, now_ms)
    unit = plan.input_unit or "inputs"
    todo = f" / {plan.inputs_to_process}" if plan.inputs_to_process else ""
    actions = _abort_button(plan) if view.steering.abort and plan.status.is_active else ""
    if view.steering.stop_batch and plan.status.value == "ACTIVE":  # UPDATE on the table: pause, resume
        actions += _pause_button(plan)
    facts = [
        ("table", esc(plan.table_name_with_type)),
        ("task type", esc(plan.task_type)),
        ("status", _status(plan.status.value)),
        ("message", f'<span data-testid="message">{esc(plan.status_message)}</span>'),
        (
            "paused",
            f'<span data-testid="paused">{esc(plan.pause_reason or "")}</span>' if plan.paused else "no",
        ),
        ("progress", _bar(fraction)),
        ("processed", f'<span data-testid="processed">{plan.inputs_processed}{todo} {esc(unit)}</span>'),
        ("in the running batch", f"{plan.inputs_being_processed} {esc(unit)}"),
        ("rate", f"{(rate or 0) * 60:.1f} {esc(unit)}/min"),
        ("ETA", _duration(eta)),
        ("batches", f"{plan.num_batches} run, {plan.num_failed_batches} failed"),
        ("source", esc(plan.source.value)),
        ("created", _time(plan.created_at_ms)),
        ("finished", _time(plan.finished_at_ms)),
        (
            "Temporal",
            _temporal_link(console, plan, "the workflow in the Temporal Web UI"),
        ),
    ]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in facts)
    configs = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in sorted(plan.properties.items())
    )
    stats = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in sorted(plan.custom_stats.items())
    )
    body = [
        f'<p><a href="/ui">&larr; all plans</a></p><h1>Plan <code>{esc(plan.plan_id)}</code></h1>',
        f'<div class="actions">{actions}</div>',
        f'<table class="facts" data-testid="plan">{rows}</table>',
        _report(plan),
        _counters(view.batches),
        _batch_table(view),
        _failures(view.batches),
        f'<h2>Task configs</h2><table class="facts">{configs}</table>',
    ]
    if stats:
        body.append(f'<h2>Generator statistics</h2><table class="facts">{stats}</table>')
    return _page(f"Plan {plan.plan_id}", "\n".join(body), now_ms)


def _report(plan: TaskPlan) -> str:
    """The plan report: Druid's row and segment counters, summed over all of the plan's batches."""
    report = plan.report
    rows = report.row_stats.model_dump(by_alias=True)
    segments = report.segments.model_dump(by_alias=True)
    subtasks = {"completed": report.subtasks_completed, "failed": report.subtasks_failed}
    cells = "".join(
        f"<tr><th>{esc(group)}</th><th>{esc(k)}</th>"
        f'<td class="num" data-testid="report-{esc(group)}-{esc(k)}">{v:,}</td></tr>'
        for group, values in (("rowStats", rows), ("segments", segments), ("subtasks", subtasks))
        for k, v in values.items()
    )
    return (
        '<h2>Plan report</h2><p class="note">summed over all of the plan\'s batches</p>'
        f'<table class="facts" data-testid="report">{cells}</table>'
    )


def _counters(batches: Sequence[BatchDetails]) -> str:
    totals: dict[str, float] = {}
    for batch in batches:
        for key, value in batch.totals.items():
            totals[key] = totals.get(key, 0.0) + value
    if not totals:
        return ""
    cells = "".join(
        f'<tr><th>{esc(k)}</th><td class="num">{v:,.0f}</td></tr>' for k, v in sorted(totals.items())
    )
    return (
        f'<h2>Row counters</h2><p class="note">summed over the {len(batches)} most recent batches</p>'
        f'<table class="facts" data-testid="counters">{cells}</table>'
    )


def _batch_table(view: PlanView) -> str:
    plan = view.plan
    if not plan.batches:
        return "<h2>Batches</h2><p class=none>none yet</p>"
    rows = []
    for record in reversed(plan.batches):
        stop = ""
        if view.steering.stop_batch and plan.status.is_active and record.task_state is TaskState.IN_PROGRESS:
            stop = _button(
                "Stop batch",
                "PUT",
                f"/tasks/taskPlans/{quote(plan.plan_id, safe='')}/batches/"
                f"{quote(record.submitted_task_name, safe='')}/stop",
                f"Stop batch {record.submitted_task_name}? The plan goes on with the next batch.",
                "stop-batch",
            )
        took = (
            None if record.finished_at_ms is None else (record.finished_at_ms - record.submitted_at_ms) / 1000
        )
        rows.append(
            f"<tr><td class=num>{record.batch_sequence}</td>"
            f"<td><code>{esc(record.submitted_task_name)}</code></td>"
            f"<td>{_status(record.task_state.value)}</td><td class=num>{record.num_subtasks}</td>"
            f"<td class=num>{record.num_failed_subtasks}</td><td class=num>{record.inputs_in_batch}</td>"
            f"<td>{_time(record.submitted_at_ms)}</td><td class=num>{_duration(took)}</td>"
            f"<td>{stop}</td></tr>"
        )
    head = (
        "<tr><th>#</th><th>task</th><th>state</th><th>subtasks</th><th>failed</th><th>inputs</th>"
        "<th>submitted</th><th>took</th><th></th></tr>"
    )
    return (
        f'<h2>Batches</h2><p class="note">the most recent {len(plan.batches)} of {plan.num_batches}</p>'
        + _table("batches", head, rows)
    )


def _failures(batches: Sequence[BatchDetails]) -> str:
    failed: list[tuple[BatchDetails, SubtaskRecord]] = [
        (batch, record) for batch in batches for record in batch.subtasks if record.error
    ]
    if not failed:
        return ""
    rows = []
    for _, record in failed[:50]:
        samples = "".join(f"<li><code>{esc(s)}</code></li>" for s in (record.samples or [])[:MAX_SAMPLES])
        rows.append(
            f"<tr><td><code>{esc(record.subtask_name)}</code></td><td>{_status(record.state.value)}</td>"
            f"<td class=num>{record.attempts}</td><td><code>{esc(record.error)}</code>"
            f"{f'<ul>{samples}</ul>' if samples else ''}</td></tr>"
        )
    head = "<tr><th>subtask</th><th>state</th><th>attempts</th><th>error and samples</th></tr>"
    return "<h2>Subtask failures</h2>" + _table("failures", head, rows)


def error_page(status: int, message: str, now_ms: int) -> str:
    return _page(
        "Task plans", f'<p><a href="/ui">&larr; all plans</a></p><p class="error">{esc(message)}</p>', now_ms
    )


# ---------------------------------------------------------------- the frame

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}
td,th{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
tr.group th{background:#f3f3f6} .num,.act{text-align:right;white-space:nowrap}
.msg{max-width:22em} .pid{max-width:18em;overflow-wrap:anywhere}
.bar{position:relative;width:12em;height:1.1em;background:#e6e6ea;border-radius:3px;overflow:hidden}
.bar span{display:block;height:100%;background:#3b82f6}
.bar.unknown span{background:repeating-linear-gradient(45deg,#cbd5e1,#cbd5e1 6px,#e2e8f0 6px,#e2e8f0 12px)}
.bar em{position:absolute;top:0;left:.4em;font-style:normal;font-size:.8em}
.st{padding:0 .4em;border-radius:3px;background:#eee} .st-active,.st-in_progress{background:#dbeafe}
.st-completed{background:#dcfce7} .st-failed,.st-task_error,.st-task_aborted,.st-timed_out{background:#fee2e2}
.st-cancelled,.st-aborting,.st-stopped,.st-aborted{background:#fef3c7}
.note,.none{color:#666} .error{color:#b91c1c} #flash{min-height:1.2em;color:#1d4ed8}
button{margin-left:.3em} footer{margin-top:2em;color:#888;font-size:.85em}
"""

_SCRIPT = """
(function () {
  const every = REFRESH_MS;
  async function refresh() {
    try {
      const r = await fetch(location.href, {credentials: 'same-origin', cache: 'no-store'});
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      const fresh = doc.querySelector('main');
      if (fresh) document.querySelector('main').replaceWith(fresh);
    } catch (e) { /* the next round tries again */ }
  }
  document.addEventListener('click', async function (event) {
    const b = event.target.closest('button[data-method]');
    if (!b || !confirm(b.dataset.confirm)) return;
    b.disabled = true;
    const flash = document.getElementById('flash');
    try {
      const r = await fetch(b.dataset.url, {method: b.dataset.method, credentials: 'same-origin'});
      const answer = await r.json().catch(() => ({}));
      flash.textContent = r.ok ? (answer.statusMessage || answer.status || 'done')
                               : (answer.error || r.statusText);
    } catch (e) { flash.textContent = String(e); }
    refresh();
  });
  setInterval(refresh, every);
})();
""".replace("REFRESH_MS", str(REFRESH_MS))


def _page(title: str, body: str, now_ms: int) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)} · taskplan</title><style>{_STYLE}</style></head><body>"
        f'<div id="flash" role="status"></div><main>{body}'
        f'<footer>as of <span data-testid="as-of">{_time(now_ms)}</span>; '
        f"refreshes every {REFRESH_MS // 1000} s</footer>"
        f"</main><script>{_SCRIPT}</script></body></html>"
    )
