"""How a plan reads its signals' raw inputs (workflows/signals.py), payload by payload, without a server.

The CLI tests (test_operator_signals.py) send the common ones for real; these pin down the rest."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter

from taskplan.models.plan import AbortRequest
from taskplan.workflows import signals

CONVERTER = pydantic_data_converter.payload_converter


def json_input(text: str) -> RawValue:
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=text.encode()))


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ([], "aborted by request"),
        ([json_input("null")], "aborted by request"),
        ([json_input('"maintenance"')], "maintenance"),
        ([json_input('"  spaced  "')], "spaced"),
        ([json_input('""')], "aborted by request"),
        ([json_input('{"reason":"x"}')], "x"),
        ([json_input('{"reason":"x","by":"ops"}')], "x"),
        ([json_input('{"reason":""}')], "aborted by request"),
        ([json_input('{"reason":7}')], '{"reason":7}'),
        ([json_input("{}")], "{}"),
        ([json_input("42")], "42"),
        ([json_input("[1, 2]")], "[1, 2]"),
        ([json_input('"first"'), json_input('"second"')], "first"),
        ([json_input("{not json")], "{not json"),
        ([RawValue(Payload(metadata={"encoding": b"binary/plain"}, data=b"bytes"))], "bytes"),
        ([RawValue(Payload(metadata={"encoding": b"x/unknown"}, data=b"\xffraw"))], "\ufffdraw"),
        ([json_input('"' + "r" * 5000 + '"')], "r" * 999 + "…"),
    ],
)
def test_abort_reasons(args: list[RawValue], reason: str) -> None:
    assert signals.abort_reason(signals.read_input(args, CONVERTER)) == reason


def test_the_api_abort_request_reads_as_before() -> None:
    payload = CONVERTER.to_payloads([AbortRequest(reason="through the API")])
    assert signals.abort_reason(signals.read_input([RawValue(payload[0])], CONVERTER)) == "through the API"
    empty = CONVERTER.to_payloads([AbortRequest()])
    assert signals.abort_reason(signals.read_input([RawValue(empty[0])], CONVERTER)) == "aborted by request"


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ([], None),
        ([json_input("null")], None),
        ([json_input('"Task_T_1"')], "Task_T_1"),
        ([json_input('{"taskName":"Task_T_1"}')], "Task_T_1"),
        ([json_input('{"task":"Task_T_1"}')], '{"task":"Task_T_1"}'),
        ([json_input("42")], "42"),
        ([RawValue(Payload(metadata={"encoding": b"x/unknown"}, data=b"Task_T_1"))], "Task_T_1"),
    ],
)
def test_batches_to_stop(args: list[RawValue], name: str | None) -> None:
    assert signals.batch_to_stop(signals.read_input(args, CONVERTER)) == name


def test_what_is_logged_about_an_input() -> None:
    unknown = RawValue(Payload(metadata={"encoding": b"x/unknown"}, data=b"why"))
    notes = signals.read_input([unknown, json_input('"more"')], CONVERTER).notes()
    assert notes == [
        "input not decodable (encoding x/unknown: KeyError), read as text 'why'",
        "1 input(s) after the first ignored",
    ]
    assert signals.read_input([json_input('"fine"')], CONVERTER).notes() == []
