"""Input files (CSV, JSON lines, Parquet) read into typed rows, with Druid's row counters.

Why one module past 400 lines: the three formats share the typing of every value (below) and the counters;
the typing rules are the part worth reading together.

- ``processed``: rows ingested cleanly; ``processedBytes``: input bytes read;
- ``processedWithError``: rows ingested with some value that could not be typed (stored as null);
- ``unparseable``: rows that are not a record at all (broken JSON, a JSON line nested deeper than
  ``MAX_JSON_DEPTH``, a CSV line with the wrong number of fields), dropped;
- ``thrownAway``: records with none of the schema's columns, dropped.

A value is typed only into what the segment file can hold: a number out of its column's range (a 5,000-digit
integer, FLOAT ``1e300``, a TIMESTAMP past the epoch-millis range of a LONG) or a string that is not valid
Unicode (a lone surrogate from a ``\\ud800`` escape) is a bad value, never a failed write.

A few messages are kept as samples. More than ``max_parse_exceptions`` (processedWithError + unparseable)
raises :class:`TooManyParseExceptions`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
import struct
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import duckdb

from taskplan.data.json_depth import nesting_depth
from taskplan.data.parquet import DuckDBConfig, sql_string
from taskplan.models.table import FieldSpec, Schema

MAX_SAMPLES = 5
MULTI_VALUE_DELIMITER = ";"  # Pinot's CSV multi-value delimiter
# Deeper JSON is refused before it is parsed: Python's parser (and every recursive walk after it, repr,
# json.dumps) would otherwise hit the interpreter's recursion limit (about 1,000 levels).
MAX_JSON_DEPTH = 100
# No LONG has more digits than this (sign aside); longer text is refused before int() is asked to convert
# it (CPython refuses more than 4,300 digits with a ValueError of its own, and the JSON parser with it).
MAX_INTEGER_DIGITS = 19
LONG_RANGE = 2**63
_SURROGATE = re.compile("[\ud800-\udfff]")
_INFINITY_TEXT = re.compile(r"^[+-]?inf(inity)?$", re.IGNORECASE)
PARQUET_BATCH_ROWS = 10_000


class InputFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"

    @classmethod
    def parse(cls, value: str) -> InputFormat:
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ValueError(
                f"inputFormat {value!r} is not supported: use one of {', '.join(f.value for f in cls)}"
            ) from None


class ReaderInitError(Exception):
    """The file cannot be opened as the given format (Pinot: the record reader fails to initialise)."""


class TooManyParseExceptions(Exception):
    pass


class BadValue(ValueError):
    """A value that cannot be typed for its column."""


@dataclass
class RowStats:
    processed: int = 0
    processed_bytes: int = 0
    processed_with_error: int = 0
    thrown_away: int = 0
    unparseable: int = 0
    samples: list[str] = field(default_factory=list)

    @property
    def parse_exceptions(self) -> int:
        return self.processed_with_error + self.unparseable

    def sample(self, message: str) -> None:
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(message)

    def counts(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "processedBytes": self.processed_bytes,
            "processedWithError": self.processed_with_error,
            "thrownAway": self.thrown_away,
            "unparseable": self.unparseable,
        }

    def add(self, other: RowStats) -> None:
        self.processed += other.processed
        self.processed_bytes += other.processed_bytes
        self.processed_with_error += other.processed_with_error
        self.thrown_away += other.thrown_away
        self.unparseable += other.unparseable
        for s in other.samples:
            self.sample(s)


def _shown(value: Any) -> str:
    """A value as quoted in a sample message, cut short."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:40]}..."


def _integer(value: Any, kind: str) -> int:
    if isinstance(value, bool):
        raise BadValue("a boolean is not a number")
    if isinstance(value, float):
        if not value.is_integer():
            raise BadValue(f"{value} is not a whole number")
        number = int(value)
    elif isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        digits = len(text.lstrip("+-").lstrip("0"))
        if digits > MAX_INTEGER_DIGITS:
            raise BadValue(f"a number of {digits} digits is out of range for {kind}")
        number = int(text)
    limit = 2**31 if kind == "INT" else LONG_RANGE
    if not -limit <= number < limit:
        raise BadValue(f"{_shown(number)} is out of range for {kind}")
    return number


def _float(value: Any, kind: str) -> float:
    if isinstance(value, bool):
        raise BadValue("a boolean is not a number")
    text = str(value).strip()
    number = float(text)
    if math.isinf(number) and not _INFINITY_TEXT.match(text):
        raise BadValue(f"{_shown(text)} is out of range for {kind}")
    if kind == "FLOAT":
        try:
            struct.pack("<f", number)  # rounds as the 32-bit FLOAT column will; refuses what overflows it
        except OverflowError:
            raise BadValue(f"{_shown(text)} is out of range for FLOAT") from None
    return number


def _timestamp(value: Any) -> int:
    if isinstance(value, datetime):
        millis = int(value.timestamp() * 1000)
    else:
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            millis = _integer(text, "TIMESTAMP")
        else:
            millis = int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    if not -LONG_RANGE <= millis < LONG_RANGE:
        raise BadValue(f"{_shown(value)} is out of range for TIMESTAMP (epoch milliseconds in a LONG)")
    return millis


def _text(value: str) -> str:
    """A string the segment file can hold: valid Unicode, so no lone surrogate (JSON's ``"\\ud800"``)."""
    if _SURROGATE.search(value):
        raise BadValue("the string is not valid Unicode (it has a lone surrogate)")
    return value


def _not_json(value: Any) -> Any:
    # Only the parser's Decimals get here: numbers too long for an int, or beyond a double's range.
    raise BadValue(f"the document has a number out of range ({_shown(value)})")


def _scalar(spec: FieldSpec, value: Any) -> Any:
    if value is None or (isinstance(value, str) and value == "" and spec.dataType != "STRING"):
        return None
    kind = spec.dataType
    if kind in ("INT", "LONG"):
        return _integer(value, kind)
    if kind in ("FLOAT", "DOUBLE"):
        return _float(value, kind)
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise BadValue(f"{value!r} is not a boolean")
    if kind == "TIMESTAMP":
        return _timestamp(value)
    if kind == "BIG_DECIMAL":
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise BadValue(f"{value!r} is not a decimal") from None
        if not number.is_finite():
            raise BadValue(f"{value!r} is not a finite decimal")
        return str(number)
    if kind == "JSON":
        return _text(value) if isinstance(value, str) else json.dumps(value, default=_not_json)
    if kind == "BYTES":
        if isinstance(value, bytes | bytearray):
            return bytes(value).hex()
        text = str(value).strip()
        bytes.fromhex(text)
        return text.lower()
    return _text(value if isinstance(value, str) else str(value))


def convert(spec: FieldSpec, value: Any, from_text: bool) -> Any:
    """One value typed for its column; raises ValueError when it cannot be."""
    if spec.singleValueField:
        return _scalar(spec, value)
    if value is None:
        return None
    if isinstance(value, str) and from_text:
        parts: list[Any] = [p for p in value.split(MULTI_VALUE_DELIMITER) if p != ""]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        parts = [value]
    return [_scalar(spec, p) for p in parts]


def _json_int(text: str) -> int | Decimal:
    # An integer too long for int() is kept exactly as a Decimal: a bad value for a numeric column
    # (out of range), its digits for a STRING or BIG_DECIMAL one, instead of failing the whole line.
    return int(text) if len(text) <= sys.get_int_max_str_digits() else Decimal(text)


def _json_float(text: str) -> float | Decimal:
    # A number beyond a double's range is kept as a Decimal rather than silently becoming infinity.
    number = float(text)
    return Decimal(text) if math.isinf(number) else number


# Decoders built once (json.loads with hooks builds one per call). Integers go through the hook only on
# the rare line with one too long for int(): a hook on every integer costs a fifth of the parse.
_DECODER = json.JSONDecoder(parse_float=_json_float)
_LONG_INTEGER_DECODER = json.JSONDecoder(parse_int=_json_int, parse_float=_json_float)


def _decode(line: str) -> Any:
    try:
        return _DECODER.decode(line)
    except json.JSONDecodeError:
        raise
    except ValueError:  # int() refused an integer's length
        return _LONG_INTEGER_DECODER.decode(line)


class RowReader:
    """Reads one input file into typed rows, counting as it goes."""

    def __init__(
        self,
        schema: Schema,
        duckdb_config: DuckDBConfig,
        *,
        max_parse_exceptions: int | None = None,
        source_name: str = "",
    ) -> None:
        self.schema = schema
        self.duckdb_config = duckdb_config  # for Parquet files
        self.fields = {spec.name: spec for spec in schema.fields}
        self.max_parse_exceptions = max_parse_exceptions
        self.source_name = source_name
        self.stats = RowStats()

    def _fail(self, message: str, *, unparseable: bool) -> None:
        if unparseable:
            self.stats.unparseable += 1
        else:
            self.stats.processed_with_error += 1
        self.stats.sample(message)
        limit = self.max_parse_exceptions
        if limit is not None and self.stats.parse_exceptions > limit:
            raise TooManyParseExceptions(
                f"{self.source_name}: more than {limit} parse exceptions (maxParseExceptions); "
                f"first: {'; '.join(self.stats.samples)}"
            )

    def _typed(self, record: Mapping[str, Any], where: str, from_text: bool) -> dict[str, Any] | None:
        known = [name for name in self.fields if name in record]
        if not known:
            self.stats.thrown_away += 1
            return None
        row: dict[str, Any] = {}
        errors = []
        for name, spec in self.fields.items():
            try:
                row[name] = convert(spec, record.get(name), from_text)
            except (ValueError, TypeError, ArithmeticError) as exc:
                row[name] = None
                errors.append(f"{name}: {exc}")
        if errors:
            self._fail(f"{where}: {'; '.join(errors)}", unparseable=False)
        else:
            self.stats.processed += 1
        return row

    def read(self, path: Path, fmt: InputFormat) -> Iterator[dict[str, Any]]:
        if fmt is InputFormat.PARQUET:
            yield from self._parquet(path)
        elif fmt is InputFormat.CSV:
            yield from self._csv(path)
        else:
            yield from self._json(path)

    def _lines(self, path: Path) -> Iterator[tuple[int, str]]:
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise ReaderInitError(f"cannot open {path}: {exc}") from exc
        with handle:
            for number, raw in enumerate(handle, start=1):
                self.stats.processed_bytes += len(raw)
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError:
                    if number == 1:
                        raise ReaderInitError(f"{path} is not UTF-8 text") from None
                    self._fail(f"line {number}: not UTF-8", unparseable=True)

    def _csv(self, path: Path) -> Iterator[dict[str, Any]]:
        lines = self._lines(path)
        try:
            _, header_line = next(lines)
        except StopIteration:
            return
        header = next(csv.reader([header_line]))
        if not any(name in self.fields for name in header):
            raise ReaderInitError(f"{path}: the CSV header names none of the schema's columns: {header}")
        for number, line in lines:
            if not line.strip():
                continue
            try:
                values = next(csv.reader(io.StringIO(line)))
            except csv.Error as exc:
                self._fail(f"line {number}: {exc}", unparseable=True)
                continue
            if len(values) != len(header):
                self._fail(
                    f"line {number}: {len(values)} fields, the header has {len(header)}", unparseable=True
                )
                continue
            row = self._typed(dict(zip(header, values, strict=True)), f"line {number}", True)
            if row is not None:
                yield row

    def _json(self, path: Path) -> Iterator[dict[str, Any]]:
        if _starts_json_array(path):  # one JSON array of records (Pinot reads that too), else JSON lines
            yield from self._json_array(path)
            return
        for number, line in self._lines(path):
            if not line.strip():
                continue
            if nesting_depth(line, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
                self._fail(f"line {number}: nested deeper than {MAX_JSON_DEPTH} levels", unparseable=True)
                continue
            try:
                record = _decode(line)
            except json.JSONDecodeError as exc:
                self._fail(f"line {number}: {exc.msg}", unparseable=True)
                continue
            if not isinstance(record, dict):
                self._fail(f"line {number}: not a JSON object", unparseable=True)
                continue
            row = self._typed(record, f"line {number}", False)
            if row is not None:
                yield row

    def _json_array(self, path: Path) -> Iterator[dict[str, Any]]:
        """The records of a JSON array, decoded one at a time as the file is read (never all of it at once).
        A broken element ends the file: where the next one starts cannot be known."""
        name = self.source_name or path.name
        number = 0
        try:
            with path.open("rb") as handle:
                for number, record in enumerate(_array_elements(handle, self._count_bytes), start=1):
                    if not isinstance(record, dict):
                        self._fail(f"element {number}: not a JSON object", unparseable=True)
                        continue
                    row = self._typed(record, f"element {number}", False)
                    if row is not None:
                        yield row
        except (ValueError, RecursionError) as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or type(exc).__name__
            raise ReaderInitError(
                f"{name}: the JSON array cannot be read past element {number + 1}: {message[:200]}"
            ) from None

    def _count_bytes(self, size: int) -> None:
        self.stats.processed_bytes += size

    def _parquet(self, path: Path) -> Iterator[dict[str, Any]]:
        with self.duckdb_config.connect(path.parent) as conn:
            try:
                cursor = conn.execute(f"SELECT * FROM read_parquet({sql_string(str(path))})")
                names = [d[0] for d in cursor.description or []]
                records = cursor.fetchmany(PARQUET_BATCH_ROWS)  # a batch at a time: memory stays flat
            except duckdb.Error as exc:
                raise ReaderInitError(f"cannot read {path} as Parquet: {exc}") from exc
            self.stats.processed_bytes += path.stat().st_size
            number = 0
            while records:
                for values in records:
                    number += 1
                    record = {k: _hex_bytes(v) for k, v in zip(names, values, strict=True)}
                    row = self._typed(record, f"row {number}", False)
                    if row is not None:
                        yield row
                try:
                    records = cursor.fetchmany(PARQUET_BATCH_ROWS)
                except duckdb.Error as exc:
                    raise ReaderInitError(f"cannot read {path} as Parquet: {exc}") from exc


def _hex_bytes(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


JSON_CHUNK_BYTES = 1 << 20
MAX_JSON_ELEMENT_CHARS = 16 << 20  # one record of a JSON array larger than this is refused
_JSON_MARGIN = 64  # characters past a decoded element (or an error) that show it was read whole
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _starts_json_array(path: Path) -> bool:
    """Whether the file's first character (after white space and a byte-order mark) is ``[``."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise ReaderInitError(f"cannot open {path.name}: {exc.strerror}") from exc
    return head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n").startswith(b"[")


def _array_elements(handle: IO[bytes], count_bytes: Callable[[int], None]) -> Iterator[Any]:
    """The elements of the JSON array in ``handle``, each decoded (by the json module's C decoder) as soon
    as it has been read whole; what is held is one chunk and the element being read. Raises ValueError for
    text that is not one JSON array."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8-sig")()  # drops a byte-order mark
    buffer, pos, at_end = "", 0, False

    def read_more() -> None:
        nonlocal buffer, pos, at_end
        if at_end:
            raise json.JSONDecodeError("the file ends inside the array", buffer, len(buffer))
        if len(buffer) - pos > MAX_JSON_ELEMENT_CHARS:
            raise ValueError(f"a record longer than {MAX_JSON_ELEMENT_CHARS} characters")
        chunk = handle.read(max(JSON_CHUNK_BYTES, len(buffer) - pos))  # a long record: fewer re-reads
        count_bytes(len(chunk))
        at_end = not chunk
        buffer = buffer[pos:] + utf8.decode(chunk, final=at_end)
        pos = 0

    def next_char() -> str:
        """The next character that is not white space (not consumed); "" at the end of the file."""
        nonlocal pos
        while True:
            match = _JSON_SPACE.match(buffer, pos)
            assert match is not None
            pos = match.end()
            if pos < len(buffer) or at_end:
                return buffer[pos] if pos < len(buffer) else ""
            read_more()

    read_more()
    if next_char() != "[":
        raise json.JSONDecodeError("not a JSON array", buffer, pos)
    pos += 1
    if next_char() == "]":
        pos += 1
    else:
        while True:
            next_char()
            while True:
                try:
                    value, end = decoder.raw_decode(buffer, pos)
                except json.JSONDecodeError as exc:
                    # Broken where the text read so far ends (or in a string running to it): maybe only
                    # not read whole yet. Broken further back: broken.
                    cut = exc.pos >= len(buffer) - _JSON_MARGIN or exc.msg.startswith("Unterminated string")
                    if at_end or not cut:
                        raise
                    read_more()
                    continue
                if at_end or end <= len(buffer) - _JSON_MARGIN:  # "1" of "1.5" cut after the 1
                    break
                read_more()
            pos = end
            yield value
            separator = next_char()
            pos += 1
            if separator == "]":
                break
            if separator == "":
                raise json.JSONDecodeError("the file ends inside the array", buffer, pos)
            if separator != ",":
                raise json.JSONDecodeError("expected , or ] after an element", buffer, pos - 1)
    if next_char() != "":
        raise json.JSONDecodeError("text after the array", buffer, pos)
