"""A plan's operator signals (``abort``, ``stop_batch``, ``pause``, ``resume``), read from their raw payloads,
whatever was typed.

A typed signal parameter makes the SDK decode the input before any handler runs, and an input that does not
fit is dropped with a line in the worker's log only: ``--input '"maintenance"'`` (a bare string where an
object was expected) aborted nothing, two ``--input`` flags made the handler raise on every replay, an
unknown encoding was lost. So the plan takes its signals raw (one dynamic handler, see TaskPlanWorkflow) and
reads them here:

==============================  ======================================  ====================================
input                           abort: the reason                       stop_batch: the batch
==============================  ======================================  ====================================
none (or JSON null)             "aborted by request"                    the running one
a string                        the string                              the task named so
``{"reason": "..."}``           the reason                              (``{"taskName": "..."}``) that task
anything else                   its raw text                            its raw text (matches no batch)
==============================  ======================================  ====================================

``pause`` and ``resume`` read their reason as ``abort`` does (defaults "paused by request" and "resumed by
request").

An input that cannot be decoded (an unknown ``encoding``) is read as its raw text, and the plan logs it with
its plan id. Only the first input counts; more are logged. Pure functions of the payloads: deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.common import RawValue
from temporalio.converter import PayloadConverter

ABORT = "abort"
STOP_BATCH = "stop_batch"
PAUSE = "pause"
RESUME = "resume"
SIGNALS = (ABORT, STOP_BATCH, PAUSE, RESUME)
DEFAULT_ABORT_REASON = "aborted by request"
DEFAULT_PAUSE_REASON = "paused by request"
DEFAULT_RESUME_REASON = "resumed by request"
MAX_TEXT = 1000  # longer reasons and names are cut: they live in the plan's state and its snapshots


@dataclass(frozen=True)
class SignalInput:
    """A signal's first input: decoded, and as raw text."""

    given: bool  # False: the signal came without input
    value: object = None  # the decoded JSON (None when not given or not decodable)
    text: str = ""  # the payload's bytes as UTF-8 text
    problem: str | None = None  # why it could not be decoded (then ``text`` is all there is)
    ignored: int = 0  # inputs after the first, not read

    def notes(self) -> list[str]:
        """What the plan logs about this input (an undecodable payload, extra inputs)."""
        notes = [f"input not decodable ({self.problem}), read as text {self.text!r}"] if self.problem else []
        if self.ignored:
            notes.append(f"{self.ignored} input(s) after the first ignored")
        return notes


def read_input(args: Sequence[RawValue], converter: PayloadConverter) -> SignalInput:
    if not args:
        return SignalInput(given=False)
    payload = args[0].payload
    text = _cut(payload.data.decode("utf-8", errors="replace"))
    encoding = payload.metadata.get("encoding", b"").decode("utf-8", errors="replace")
    try:
        value = converter.from_payload(payload)
    except Exception as err:  # an encoding no converter knows, invalid JSON, ...
        problem = f"encoding {encoding or 'unset'}: {type(err).__name__}"
        return SignalInput(given=True, text=text, problem=problem, ignored=len(args) - 1)
    if isinstance(value, bytes):  # binary/plain: its bytes are its text
        value = text
    return SignalInput(given=True, value=value, text=text, ignored=len(args) - 1)


def abort_reason(request: SignalInput, default: str = DEFAULT_ABORT_REASON) -> str:
    """The reason an abort (or a pause, a resume) gives: its string, its ``reason``, else its raw text;
    never empty."""
    value = request.value
    if request.problem is None and value is None:
        return default
    if isinstance(value, dict) and "reason" in value:
        value = value["reason"]  # AbortRequest / PauseRequest, as the API and the Python client send it
        if value is None or value == "":
            return default
    if isinstance(value, str):
        return _cut(value.strip()) or default
    return request.text.strip() or default


def batch_to_stop(request: SignalInput) -> str | None:
    """The task name a stop_batch names (None: no input, the running batch); else its raw text."""
    value = request.value
    if request.problem is None and value is None:
        return None
    if isinstance(value, dict) and isinstance(value.get("taskName"), str):
        value = value["taskName"]
    if isinstance(value, str):
        return _cut(value.strip())
    return request.text.strip()


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
