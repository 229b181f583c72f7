"""Human-readable dates and their ISO forms: the offline task of the attention course.

``generate_dates(n, seed)`` draws dates uniformly from a range and writes each
in one of ``FORMATS`` — month names full or abbreviated, weekday names,
ordinals ("3rd"), numeric with ``/``, ``.`` or ``-``, two- and four-digit
years — with names in lower, title or upper case. The target is
``YYYY-MM-DD``. The same seed gives the same examples on every machine
(NumPy's PCG64 stream).

Two conventions keep every input unambiguous, so a perfect model exists:

* numeric dates with ``/`` are month-first (US: ``5/9/18`` is 2018-05-09),
  with ``.`` or ``-`` day-first (``9.5.18`` is 2018-05-09), and a four-digit
  group in front is the year (``2018-05-09``);
* two-digit years follow POSIX's ``%y`` rule, 69-99 -> 19xx and 00-68 -> 20xx,
  which is why the default range is the hundred years 1969-2068 that rule names.
  Dates outside that window are only written with four-digit years.

Examples longer than ``max_length`` characters get another format (the
numeric ones are always short enough).
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

MONTHS = tuple(calendar.month_name[1:])  # English names, independent of the process locale
MONTHS_ABBR = tuple(m[:3] for m in MONTHS)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEKDAYS_ABBR = tuple(d[:3] for d in WEEKDAYS)

# Placeholders: {d}/{dd} day (unpadded/padded), {do} ordinal day, {m}/{mm} month number,
# {MMMM}/{MMM} month name, {EEEE}/{EEE} weekday name, {yy}/{yyyy} year.
FORMATS: tuple[str, ...] = (
    "{d} {MMMM} {yyyy}", "{d} {MMM} {yyyy}", "{dd} {MMM} {yyyy}", "{d} {MMMM}, {yyyy}",
    "{d} {MMM} {yy}", "{dd}-{MMM}-{yyyy}", "{d}-{MMM}-{yy}",
    "{MMMM} {d} {yyyy}", "{MMMM} {d}, {yyyy}", "{MMM} {d}, {yyyy}", "{MMM} {dd} {yy}", "{MMM}. {d}, {yyyy}",
    "{EEEE} {MMMM} {d} {yyyy}", "{EEEE}, {MMMM} {d}, {yyyy}", "{EEE} {d} {MMM} {yyyy}",
    "{EEEE} {d} {MMMM} {yyyy}", "{EEE}, {MMM} {d}, {yy}", "{EEEE} {dd}.{mm}.{yyyy}",
    "{MMMM} {do} {yyyy}", "{MMMM} {do}, {yyyy}", "{do} {MMMM} {yyyy}", "{do} of {MMMM} {yyyy}",
    "the {do} of {MMMM} {yyyy}", "{EEEE} the {do} of {MMMM}, {yyyy}", "{do} {MMM} {yy}",
    "{m}/{d}/{yy}", "{mm}/{dd}/{yy}", "{m}/{d}/{yyyy}", "{mm}/{dd}/{yyyy}",
    "{d}.{m}.{yy}", "{dd}.{mm}.{yy}", "{d}.{m}.{yyyy}", "{dd}.{mm}.{yyyy}",
    "{d}-{m}-{yy}", "{dd}-{mm}-{yy}", "{dd}-{mm}-{yyyy}",
    "{yyyy}-{mm}-{dd}", "{yyyy}-{m}-{d}", "{yyyy}/{mm}/{dd}", "{yyyy}.{mm}.{dd}",
)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")

TWO_DIGIT_WINDOW = (dt.date(1969, 1, 1), dt.date(2068, 12, 31))
CASES = ("lower", "title", "upper")
_CASE_P = (0.4, 0.45, 0.15)


@dataclass(frozen=True)
class DateExample:
    """One pair: ``text`` (what a person wrote), ``iso`` (``YYYY-MM-DD``), and the ``pattern`` used."""

    text: str
    iso: str
    pattern: str


def ordinal(day: int) -> str:
    """``1`` -> ``"1st"``, ``2`` -> ``"2nd"``, ``11`` -> ``"11th"``, ``23`` -> ``"23rd"``."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def render(date: dt.date, pattern: str, case: str = "title") -> str:
    """Write ``date`` in ``pattern`` (see ``FORMATS``); names, ordinal suffixes and literal
    words in ``case`` (``"title"`` keeps names as written and capitalises the first letter)."""
    fields = {
        "MMMM": MONTHS[date.month - 1], "MMM": MONTHS_ABBR[date.month - 1],
        "EEEE": WEEKDAYS[date.weekday()], "EEE": WEEKDAYS_ABBR[date.weekday()],
        "d": str(date.day), "dd": f"{date.day:02d}", "do": ordinal(date.day),
        "m": str(date.month), "mm": f"{date.month:02d}", "yy": f"{date.year % 100:02d}", "yyyy": f"{date.year:04d}",
    }
    change = {"lower": str.lower, "upper": str.upper, "title": str}[case]
    parts = _PLACEHOLDER.split(pattern)  # literals at even positions, field names at odd ones
    text = "".join(change(fields[p] if i % 2 else p) for i, p in enumerate(parts))
    return text[:1].upper() + text[1:] if case == "title" else text


def _two_digit_year(pattern: str) -> bool:
    return "{yy}" in pattern


def alphabet(patterns: tuple[str, ...] = FORMATS) -> str:
    """Every character the generator can write with ``patterns`` (lower-cased), sorted."""
    chars = set("0123456789")
    for p in patterns:
        chars.update(_PLACEHOLDER.sub("", p).lower())
        if "{do}" in p:
            chars.update("stndrh")
    for names in (MONTHS, MONTHS_ABBR, WEEKDAYS, WEEKDAYS_ABBR):
        for name in names:
            chars.update(name.lower())
    return "".join(sorted(chars))


def generate_dates(
    n: int,
    seed: int = 0,
    max_length: int = 30,
    start: dt.date = TWO_DIGIT_WINDOW[0],
    end: dt.date = TWO_DIGIT_WINDOW[1],
    patterns: tuple[str, ...] = FORMATS,
) -> list[DateExample]:
    """``n`` examples drawn with ``seed``: dates uniform in ``[start, end]``, formats and cases uniform
    (cases 40% lower, 45% title, 15% upper). Deterministic for a given set of arguments."""
    if n < 0:
        raise ValueError(f"generate_dates: n must be >= 0, got {n}")
    if end < start:
        raise ValueError(f"generate_dates: end {end} is before start {start}")
    rng = np.random.default_rng(seed)
    span = (end - start).days + 1
    offsets = rng.integers(0, span, size=n)
    pattern_ids = rng.integers(0, len(patterns), size=n)
    cases = rng.choice(len(CASES), size=n, p=_CASE_P)
    out = []
    for off, pid, cid in zip(offsets.tolist(), pattern_ids.tolist(), cases.tolist()):
        date = start + dt.timedelta(days=off)
        in_window = TWO_DIGIT_WINDOW[0] <= date <= TWO_DIGIT_WINDOW[1]
        for _ in range(1000):
            pattern = patterns[pid]
            text = render(date, pattern, CASES[cid])
            if len(text) <= max_length and (in_window or not _two_digit_year(pattern)):
                break
            pid = int(rng.integers(0, len(patterns)))  # a draw only the rejected examples make
        else:
            raise ValueError(f"generate_dates: no format writes {date} in at most max_length={max_length} characters")
        out.append(DateExample(text, date.isoformat(), pattern))
    return out


def date_splits(n_train: int, n_test: int, seed: int = 0,
                max_length: int = 30) -> tuple[list[DateExample], list[DateExample]]:
    """A training set and a held-out set from separate streams of ``seed``; no held-out
    text also appears in the training set."""
    train = generate_dates(n_train, seed=seed, max_length=max_length)
    seen = {e.text for e in train}
    test: list[DateExample] = []
    round_ = 0
    while len(test) < n_test:
        batch = generate_dates(2 * (n_test - len(test)), seed=(seed, 1, round_), max_length=max_length)
        for e in batch:
            if e.text not in seen and len(test) < n_test:
                seen.add(e.text)
                test.append(e)
        round_ += 1
    return train, test
