"""dockyard.units against go-units' behaviour (HumanSize, BytesSize, HumanDuration, RAMInBytes,
FromHumanSize)."""

from datetime import datetime, timedelta, timezone

import pytest

from dockyard.errors import InvalidArgument
from dockyard.units import (
    bytes_size,
    human_duration,
    human_size,
    parse_human_size,
    parse_size,
    since,
)

KB, MB, GB, TB, PB = 1000, 1000**2, 1000**3, 1000**4, 1000**5
KiB, MiB, GiB, TiB, PiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40, 1 << 50


@pytest.mark.parametrize(
    "size, expected",
    [
        (0, "0B"),
        (1, "1B"),
        (999, "999B"),
        (1000, "1kB"),
        (1024, "1.024kB"),
        (1500, "1.5kB"),
        (999_999, "1000kB"),  # rounds to 4 digits without moving to the next unit
        (1_000_000, "1MB"),
        (1_048_576, "1.049MB"),
        (1_234_567, "1.235MB"),
        (2 * MB, "2MB"),
        (4_261_237, "4.261MB"),
        (int(3.42 * GB), "3.42GB"),
        (int(5.372 * TB), "5.372TB"),
        (int(2.22 * PB), "2.22PB"),
        (1e18, "1EB"),
        (1e21, "1ZB"),
        (1e24, "1YB"),
        (1e28, "1e+04YB"),
        (12.5, "12.5B"),
        (-5, "-5B"),
    ],
)
def test_human_size(size, expected):
    assert human_size(size) == expected


@pytest.mark.parametrize(
    "size, expected",
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (1536, "1.5KiB"),
        (MiB, "1MiB"),
        (GiB, "1GiB"),
        (int(3.42 * GiB), "3.42GiB"),
        (int(5.372 * TiB), "5.372TiB"),
        (int(2.22 * PiB), "2.22PiB"),
        (1024**6, "1EiB"),
        (10_000_000, "9.537MiB"),
    ],
)
def test_bytes_size(size, expected):
    assert bytes_size(size) == expected


def test_sizes_of_non_finite_numbers_are_spelled_like_go():
    assert human_size(float("inf")) == "+InfYB"
    assert human_size(float("nan")) == "NaNB"


HOUR = 3600
DAY = 24 * HOUR


@pytest.mark.parametrize(
    "seconds, expected",
    [
        (-5, "Less than a second"),
        (0, "Less than a second"),
        (0.999, "Less than a second"),
        (1, "1 second"),
        (1.999, "1 second"),
        (2, "2 seconds"),
        (59.9, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3 * 60, "3 minutes"),
        (59 * 60 + 59, "59 minutes"),
        (HOUR, "About an hour"),
        (89 * 60, "About an hour"),  # 1.48h rounds to 1
        (90 * 60, "2 hours"),  # 1.5h rounds to 2
        (2 * HOUR, "2 hours"),
        (47 * HOUR, "47 hours"),
        (47 * HOUR + 30 * 60, "2 days"),  # rounds to 48 hours
        (48 * HOUR, "2 days"),
        (13 * DAY, "13 days"),
        (14 * DAY - 31 * 60, "13 days"),
        (14 * DAY, "2 weeks"),
        (20 * DAY, "2 weeks"),
        (21 * DAY, "3 weeks"),
        (59 * DAY, "8 weeks"),
        (60 * DAY, "2 months"),
        (364 * DAY, "12 months"),
        (729 * DAY, "24 months"),
        (730 * DAY, "2 years"),
        (3 * 365 * DAY, "3 years"),
        (10 * 365 * DAY + 5 * DAY, "10 years"),
    ],
)
def test_human_duration(seconds, expected):
    assert human_duration(seconds) == expected


def test_human_duration_changes_only_at_whole_seconds_then_whole_minutes():
    """What the container list's Status cache (daemon/containers.py, _Entry.json) relies on: the
    text holds over each whole second under a minute, and over each whole minute past it."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=3000, deadline=None)
    @given(st.floats(min_value=0, max_value=86400 * 3 * 365, allow_nan=False))
    def holds(elapsed: float) -> None:
        unit = 1.0 if elapsed < 60 else 60.0
        start = elapsed - elapsed % unit
        assert human_duration(elapsed) == human_duration(start) == human_duration(start + unit - 1e-6)

    holds()
    for edge in (59.999, 60.0, 5399.0, 5400.0, 86400 * 2 - 1800.5):  # a minute, half hours
        unit = 1.0 if edge < 60 else 60.0
        assert human_duration(edge) == human_duration(edge - edge % unit)


def test_human_duration_accepts_timedelta():
    assert human_duration(timedelta(minutes=3, seconds=59)) == "3 minutes"
    assert human_duration(timedelta(microseconds=999_999)) == "Less than a second"
    assert human_duration(timedelta(days=3)) == "3 days"


def test_human_duration_rejects_other_types():
    with pytest.raises(TypeError):
        human_duration("3s")


NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "ts, expected",
    [
        (NOW, "Less than a second ago"),
        (NOW - timedelta(minutes=3), "3 minutes ago"),
        (NOW - timedelta(minutes=70), "About an hour ago"),
        (NOW - timedelta(days=65), "2 months ago"),
        (NOW + timedelta(hours=1), "Less than a second ago"),  # clock skew
        (NOW.replace(tzinfo=None) - timedelta(seconds=30), "30 seconds ago"),  # naive = UTC
        (NOW.timestamp() - 2 * DAY, "2 days ago"),  # Unix seconds
        (datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
         "Less than a second ago"),
    ],
)
def test_since(ts, expected):
    assert since(ts, now=NOW) == expected


def test_since_defaults_to_now():
    assert since(datetime.now(timezone.utc) - timedelta(minutes=5)) == "5 minutes ago"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("32", 32),
        ("32b", 32),
        ("32B", 32),
        ("32k", 32 * KiB),
        ("32K", 32 * KiB),
        ("32kb", 32 * KiB),
        ("32Kb", 32 * KiB),
        ("32kib", 32 * KiB),
        ("32KiB", 32 * KiB),
        ("32Mb", 32 * MiB),
        ("512m", 512 * MiB),
        ("32Gb", 32 * GiB),
        ("32Tb", 32 * TiB),
        ("32Pb", 32 * PiB),
        ("32PB", 32 * PiB),
        ("32P", 32 * PiB),
        ("32.3", 32),
        ("0.3MB", 314572),  # 0.3 * 1048576 truncated
        ("32.3 mb", 33869004),
        ("1.5g", 1610612736),
        ("5.", 5),
        (".5k", 512),
        ("1e3", 1000),
        ("0x10p0k", 16 * KiB),  # Go's ParseFloat reads hex floats
        ("12 ", 12),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "invalid size: ''"),
        ("hello", "invalid size: 'hello'"),
        ("-32", "invalid size: '-32'"),
        ("12zz", "invalid suffix: 'zz'"),
        ("12ZZ", "invalid suffix: 'zz'"),
        ("32mm", "invalid suffix: 'mm'"),
        ("32bm", "invalid suffix: 'bm'"),
        ("32kbb", "invalid suffix: 'kbb'"),
        ("32mbit", "invalid suffix: 'mbit'"),
        ("32x", "invalid suffix: 'x'"),
        ("32.3.4", 'strconv.ParseFloat: parsing "32.3.4": invalid syntax'),
        (" 32", 'strconv.ParseFloat: parsing " 32": invalid syntax'),
        ("32m b", 'strconv.ParseFloat: parsing "32m": invalid syntax'),
        ("1_000", 'strconv.ParseFloat: parsing "1_000": invalid syntax'),
        ("1e400", 'strconv.ParseFloat: parsing "1e400": value out of range'),
        ("Inf ", "invalid size: 'Inf '"),
        ("10000p", "invalid size: '10000p'"),  # beyond int64
    ],
)
def test_parse_size_errors(text, message):
    with pytest.raises(InvalidArgument) as exc:
        parse_size(text)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("32", 32),
        ("32kb", 32 * KB),
        ("32KB", 32 * KB),
        ("32k", 32 * KB),
        ("32KiB", 32 * KB),  # go-units accepts "ib" with the decimal map too
        ("32mb", 32 * MB),
        ("1.5GB", 1_500_000_000),
        ("2tb", 2 * TB),
        ("2P", 2 * PB),
    ],
)
def test_parse_human_size(text, expected):
    assert parse_human_size(text) == expected


def test_parse_human_size_errors():
    with pytest.raises(InvalidArgument, match="invalid suffix: 'q'"):
        parse_human_size("1q")


@pytest.mark.parametrize("size, expected", [(1982349, "1.98MB"), (999, "999B"), (0, "0B"), (1234567890, "1.23GB")])
def test_human_size_with_precision_3(size, expected):
    # go-units HumanSizeWithPrecision(size, 3), as `docker images` prints SIZE
    assert human_size(size, 3) == expected
