"""Docker's human units: the behaviour of ``github.com/docker/go-units`` (v0.5).

``docker images`` prints SIZE with :func:`human_size`, the CREATED column with :func:`since`,
and ``-m 512m`` is read with :func:`parse_size`.  Outputs match go-units byte for byte; where
go-units relies on undefined Go behaviour (converting an out-of-range float to ``int64``) we
raise :class:`~dockyard.errors.InvalidArgument` instead.
"""

from __future__ import annotations

import math
import re

from .errors import InvalidArgument

__all__ = [
    "bytes_size",
    "human_duration",
    "human_size",
    "parse_human_size",
    "parse_size",
    "since",
]

_DECIMAL_ABBRS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _custom_size(size: float, base: float, abbrs: tuple[str, ...], precision: int = 4) -> str:
    size = float(size)
    i = 0
    while size >= base and i < len(abbrs) - 1:
        size /= base
        i += 1
    if math.isnan(size):
        num = "NaN"
    elif math.isinf(size):
        num = "+Inf" if size > 0 else "-Inf"
    else:
        # Go's %.4g and C's/Python's %.4g agree: 4 significant digits, trailing zeros
        # dropped, exponent form only when the exponent is < -4 or >= 4.
        num = "%.*g" % (precision, size)
    return num + abbrs[i]


def human_size(size: float, precision: int = 4) -> str:
    """go-units ``HumanSize``: decimal units, 4 significant digits (``1234567`` -> ``1.235MB``);
    with ``precision`` it is ``HumanSizeWithPrecision`` (``docker images`` uses 3: ``1.23MB``)."""
    return _custom_size(size, 1000.0, _DECIMAL_ABBRS, precision)


def bytes_size(size: float) -> str:
    """go-units ``BytesSize``: binary units, 4 significant digits (``1536`` -> ``1.5KiB``)."""
    return _custom_size(size, 1024.0, _BINARY_ABBRS)


# ---------------------------------------------------------------------------------------------
# durations

_NS = 1_000_000_000
_MINUTE = 60 * _NS
_HOUR = 60 * _MINUTE


def _to_nanoseconds(d) -> int:
    """A Go ``time.Duration`` (int64 nanoseconds) from seconds or a ``timedelta``."""
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return round(d * _NS)
    try:
        # timedelta: exact integer arithmetic, no float rounding.
        return ((d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds) * 1000
    except AttributeError:
        raise TypeError(f"expected seconds or a timedelta, not {type(d).__name__}") from None


def _go_unit(ns: int, unit: int) -> float:
    """``Duration.Seconds()/Minutes()/Hours()``: whole units plus the remainder as a fraction."""
    whole = abs(ns) // unit
    if ns < 0:
        whole = -whole
    rest = ns - whole * unit
    return float(whole) + rest / unit


def human_duration(d) -> str:
    """go-units ``HumanDuration``: ``"Less than a second"``, ``"About an hour"``, ``"3 weeks"``...

    ``d`` is a number of seconds or a :class:`datetime.timedelta`.
    """
    ns = _to_nanoseconds(d)
    seconds = int(_go_unit(ns, _NS))
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = int(_go_unit(ns, _MINUTE))
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(_go_unit(ns, _HOUR) + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    # go-units uses the unrounded hours here.
    return f"{int(_go_unit(ns, _HOUR)) // 24 // 365} years"


def since(ts, now=None) -> str:
    """Docker's CREATED column: ``human_duration(now - ts) + " ago"``.

    ``ts`` is an aware :class:`~datetime.datetime`, a naive one taken as UTC, or Unix seconds.
    ``now`` (same kinds) defaults to the current time.
    """
    from datetime import datetime, timezone  # only the commands that show ages pay for it

    def as_datetime(value):
        if isinstance(value, datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return datetime.fromtimestamp(value, timezone.utc)

    now_dt = datetime.now(timezone.utc) if now is None else as_datetime(now)
    return human_duration(now_dt - as_datetime(ts)) + " ago"


# ---------------------------------------------------------------------------------------------
# parsing sizes

_DECIMAL_MAP = {"k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}
_BINARY_MAP = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

# What Go's strconv.ParseFloat accepts that can end in a digit, '.' or precede a space:
# decimal floats without underscores, and hex floats (which need a 'p' exponent).
_GO_DECIMAL_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GO_HEX_FLOAT = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
)
_GO_SPECIAL_FLOAT = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_INT64_LIMIT = float(1 << 63)


def _parse_float(num: str) -> float:
    if _GO_DECIMAL_FLOAT.fullmatch(num):
        value = float(num)
    elif _GO_HEX_FLOAT.fullmatch(num):
        value = float.fromhex(num)
    elif _GO_SPECIAL_FLOAT.fullmatch(num):
        value = float(num)
    else:
        raise InvalidArgument(f'strconv.ParseFloat: parsing "{num}": invalid syntax')
    if math.isinf(value) and not _GO_SPECIAL_FLOAT.fullmatch(num):
        raise InvalidArgument(f'strconv.ParseFloat: parsing "{num}": value out of range')
    return value


def _to_int64(value: float, size_str: str) -> int:
    # Go's int64(f) is undefined for NaN, infinities and values out of range; refuse them.
    if math.isnan(value) or not -_INT64_LIMIT <= value < _INT64_LIMIT:
        raise InvalidArgument(f"invalid size: '{size_str}'")
    return int(value)  # truncates toward zero, like Go


def _parse_size(size_str: str, unit_map: dict[str, int]) -> int:
    sep = max(size_str.rfind(c) for c in "0123456789. ")
    if sep == -1:
        raise InvalidArgument(f"invalid size: '{size_str}'")
    if size_str[sep] != " ":
        num, sfx = size_str[: sep + 1], size_str[sep + 1 :]
    else:
        num, sfx = size_str[:sep], size_str[sep + 1 :]

    size = _parse_float(num)
    if size < 0:
        raise InvalidArgument(f"invalid size: '{size_str}'")
    if not sfx:
        return _to_int64(size, size_str)

    if len(sfx) > 3:
        raise InvalidArgument(f"invalid suffix: '{sfx}'")
    sfx = sfx.lower()
    if sfx[0] == "b":
        if len(sfx) > 1:
            raise InvalidArgument(f"invalid suffix: '{sfx}'")
        return _to_int64(size, size_str)
    mul = unit_map.get(sfx[0])
    if mul is None or (len(sfx) == 2 and sfx[1] != "b") or (len(sfx) == 3 and sfx[1:] != "ib"):
        raise InvalidArgument(f"invalid suffix: '{sfx}'")
    return _to_int64(size * float(mul), size_str)


def parse_size(size: str) -> int:
    """go-units ``RAMInBytes``: ``"512m"`` -> 536870912.  Binary multiples; the ``b``/``ib``
    suffix is optional and case is ignored.  Raises InvalidArgument (``invalid size: '…'``,
    ``invalid suffix: 'zz'``) like go-units does."""
    return _parse_size(size, _BINARY_MAP)


def parse_human_size(size: str) -> int:
    """go-units ``FromHumanSize``: like :func:`parse_size` but decimal (``"1kB"`` -> 1000)."""
    return _parse_size(size, _DECIMAL_MAP)


_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` ("1m30s", "500ms", "-2h", "0") in nanoseconds; ValueError
    with Go's message otherwise."""
    import re

    s = text
    sign = -1 if s.startswith("-") else 1
    s = s[1:] if s[:1] in "+-" and s else s
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0
    for m in re.finditer(r"(\d*)(?:\.(\d*))?([^\d.]*)", s):
        if not m.group(0):
            continue
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _GO_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        size = _GO_UNITS[unit]
        total += int(whole or 0) * size + (int(int(frac) * size / 10 ** len(frac)) if frac else 0)
    if total >= 1 << 63:
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` ("1s", "500ms", "1m30s", "1h0m0s")."""
    if ns < 0:
        return "-" + go_duration(-ns)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{_trim_float(ns / size)}{unit}"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{_trim_float(rest / 1e9)}s"


def _trim_float(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".") or "0"
