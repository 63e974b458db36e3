"""Event times: turning a file's time column into epoch seconds.

A time format is ``seconds`` (epoch seconds, the default; also ``s`` or ``epoch``), ``ms``
(epoch milliseconds), ``iso`` (ISO 8601, e.g. ``2024-03-01T12:00:00+01:00`` or ``2024-03-01``)
or a :func:`time.strftime` pattern (anything with a ``%``, e.g. ``%d/%m/%Y %H:%M``). Times
without a UTC offset are read as UTC. A column a Parquet file stores as a timestamp is read
as such, whatever the format says.

Examples
--------
>>> parse = time_parser("iso")
>>> parse("2024-03-01T00:00:00Z"), parse("2024-03-01T01:00:00+01:00"), parse("2024-03-01")
(1709251200.0, 1709251200.0, 1709251200.0)
>>> time_parser("ms")("1709251200000"), time_parser("%d/%m/%Y")("01/03/2024")
(1709251200.0, 1709251200.0)
>>> time_parser("seconds")("yesterday")
Traceback (most recent call last):
ValueError: 'yesterday' is not epoch seconds
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any, Callable

SECONDS = ("seconds", "s", "epoch")
MILLISECONDS = ("ms", "milliseconds")
ISO = ("iso", "iso8601")
FORMATS_HELP = "seconds, ms, iso or a strftime pattern such as %Y-%m-%d %H:%M:%S"


def check_time_format(name: str) -> str:
    """``name`` if it is a time format; raises ValueError naming the accepted ones otherwise."""
    if name in SECONDS + MILLISECONDS + ISO or "%" in name:
        return name
    raise ValueError(f"time format {name!r} is not one of {FORMATS_HELP}")


def _utc(moment: dt.datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def _number(raw: Any, unit: str) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not epoch {unit}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{str(raw)[:60]!r} is not epoch {unit}") from None
    if not math.isfinite(value):
        raise ValueError(f"{str(raw)[:60]!r} is not a finite time")
    return value


def time_parser(name: str) -> Callable[[Any], float]:
    """A function from one time cell (text, a number or a datetime) to epoch seconds.

    It raises ValueError, with a short description of the cell, for a cell it cannot read.
    """
    check_time_format(name)

    def parse(raw: Any) -> float:
        if isinstance(raw, dt.datetime):          # a Parquet timestamp column
            return _utc(raw)
        if name in SECONDS:
            return _number(raw, "seconds")
        if name in MILLISECONDS:
            return _number(raw, "milliseconds") / 1000.0
        text = str(raw).strip()
        try:
            moment = dt.datetime.fromisoformat(text) if name in ISO else dt.datetime.strptime(text, name)
        except ValueError:
            expected = "ISO 8601" if name in ISO else f"in the format {name}"
            raise ValueError(f"{text[:60]!r} is not {expected}") from None
        return _utc(moment)
    return parse
