import calendar
import collections
import datetime as dt
import re

import pytest

from rnnkit.seq2seq.dates import CASES, FORMATS, date_splits, generate_dates, ordinal, render

# The test's own reading of each placeholder, for datetime.strptime (independent of the
# generator's renderer, which never calls strftime).
STRPTIME = {"d": "%d", "dd": "%d", "do": "%d", "m": "%m", "mm": "%m", "MMMM": "%B", "MMM": "%b",
            "EEEE": "%A", "EEE": "%a", "yy": "%y", "yyyy": "%Y"}
ORDINAL = re.compile(r"(\d+)(st|nd|rd|th)\b", re.IGNORECASE)


def parse_source(text: str, pattern: str) -> dt.date:
    # strptime matches names case-insensitively; literal words ("the", "of") are lowered on both sides.
    parts = re.split(r"\{(\w+)\}", pattern)
    fmt = "".join(STRPTIME[p] if i % 2 else p.lower().replace("%", "%%") for i, p in enumerate(parts))
    return dt.datetime.strptime(ORDINAL.sub(r"\1", text).lower(), fmt).date()


@pytest.fixture(scope="module")
def examples():
    return generate_dates(6000, seed=3)


def test_every_target_is_the_iso_form_of_the_source_date(examples):
    for e in examples:
        target = dt.date.fromisoformat(e.iso)
        assert e.iso == target.strftime("%Y-%m-%d")
        assert parse_source(e.text, e.pattern) == target, (e.text, e.pattern, e.iso)


def test_weekday_names_and_ordinals_are_right(examples):
    names = {n.lower(): i for i, n in enumerate(calendar.day_name)}
    names.update({n.lower(): i for i, n in enumerate(calendar.day_abbr)})
    checked = 0
    for e in examples:
        date = dt.date.fromisoformat(e.iso)
        first = re.split(r"[ ,.]", e.text)[0].lower()
        if "{EEE" in e.pattern:
            assert names[first] == date.weekday(), e
            checked += 1
        if "{do}" in e.pattern:
            assert ordinal(date.day).lower() in e.text.lower()
    assert checked > 100


def test_formats_cases_and_lengths_are_all_covered(examples):
    assert {e.pattern for e in examples} == set(FORMATS)
    cases = collections.Counter(
        "upper" if e.text.isupper() else "lower" if e.text.lower() == e.text else "title"
        for e in examples if re.search("[a-zA-Z]", e.text)
    )
    assert set(cases) == set(CASES)
    assert max(len(e.text) for e in examples) <= 30
    assert any("/" in e.text for e in examples) and any("." in e.text for e in examples)
    years = [int(e.iso[:4]) for e in examples if "{yy}" in e.pattern]
    assert min(years) >= 1969 and max(years) <= 2068


def test_course_examples():
    assert render(dt.date(1979, 5, 3), "{d} {MMMM} {yyyy}") == "3 May 1979"
    # The course's "Saturday May 9 2018" names the wrong weekday: that day was a Wednesday.
    assert render(dt.date(2018, 5, 9), "{EEEE} {MMMM} {d} {yyyy}") == "Wednesday May 9 2018"
    assert render(dt.date(2018, 5, 9), "{mm}/{dd}/{yy}", "lower") == "05/09/18"
    assert render(dt.date(2001, 1, 3), "the {do} of {MMMM} {yyyy}", "upper") == "THE 3RD OF JANUARY 2001"
    assert [ordinal(d) for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]


def test_deterministic_and_seed_dependent():
    assert generate_dates(50, seed=7) == generate_dates(50, seed=7)
    assert generate_dates(50, seed=7) != generate_dates(50, seed=8)


def test_held_out_texts_never_occur_in_training():
    train, test = date_splits(3000, 500, seed=1)
    assert len(train) == 3000 and len(test) == 500
    assert not {e.text for e in test} & {e.text for e in train}
    assert len({e.text for e in test}) == 500


def test_short_max_length_and_two_digit_window():
    short = generate_dates(300, seed=2, max_length=12)
    assert all(len(e.text) <= 12 for e in short)
    old = generate_dates(200, seed=2, start=dt.date(1900, 1, 1), end=dt.date(1960, 12, 31))
    assert all("{yy}" not in e.pattern for e in old)  # two-digit years would be misread
    with pytest.raises(ValueError, match="max_length"):
        generate_dates(5, max_length=5)
