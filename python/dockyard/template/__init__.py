"""Docker's ``--format``: Go's ``text/template`` with Docker's functions, and its tables.

Outputs are meant to be byte-identical to ``docker`` for the same data, so this package
re-implements the parts of Go that show: the template lexer, parser and executor, ``fmt``'s
printing of values (``%v``, ``printf``), ``encoding/json`` for ``{{json}}``, and the
``tabwriter`` that aligns ``table`` output.

Data model.  Templates see Python values the way Go templates see ``interface{}`` values:

* ``dict`` (any mapping) is a Go **map**: ``.Key`` looks the key up, a missing key prints
  ``<no value>``, printing shows ``map[k:v]`` and ``json`` sorts the keys.
* :class:`Struct` (a ``dict`` subclass), dataclasses and other objects are Go **structs**:
  fields keep their order in ``json``, print as ``{v1 v2}``, and a missing field is an error
  (``can't evaluate field X``).  Callable attributes are methods and may take arguments.
* ``None`` is ``nil``; ``str``, ``int``, ``float``, ``bool``, ``list``/``tuple`` are Go's
  ``string``, ``int``, ``float64``, ``bool`` and ``[]interface{}``.

Public API: :func:`compile` / :class:`Template` (raw templates, as ``docker inspect`` uses
them), :func:`render_lines` and :func:`format_table` (the formatter of ``docker ps``,
``images`` ...: ``table`` prefix, ``\\t``/``\\n`` escapes, ``json`` shorthand), :func:`is_table`,
:func:`preprocess` and :func:`tabwriter`.  Every failure raises
:class:`~dockyard.errors.TemplateError` with Docker's one-line message, e.g.
``template parsing error: template: :1: function "foo" not defined``.
"""

from __future__ import annotations

import re

from ..errors import TemplateError
from .values import _NOVALUE, Struct
from .funcs import _FUNCS, _HEADER_FUNCS
from .parse import _List, _ParseError, _Parser
from .execute import _Break, _Continue, _ExecError, _State
from .tabwriter import tabwriter

__all__ = [
    "Struct",
    "Template",
    "compile",
    "default_header",
    "format_table",
    "is_table",
    "preprocess",
    "render_lines",
    "tabwriter",
]

TABLE_PREFIX = "table"
JSON_FORMAT = "{{json .}}"


# =============================================================================================
# public API

class Template:
    """A parsed template.  Build it with :func:`compile`."""

    __slots__ = ("source", "_root", "_defs")

    def __init__(self, source: str, root: _List, defs: dict[str, _List]) -> None:
        self.source = source
        self._root = root
        self._defs = defs

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def _execute(self, obj, funcs, missingkey: str) -> str:
        if missingkey not in ("default", "invalid", "zero", "error"):
            raise ValueError(f"unknown missingkey option {missingkey!r}")
        state = _State(self.source, self._defs, funcs, missingkey)
        dot = _NOVALUE if obj is None else obj
        state.vars.append(["$", dot])
        try:
            state.walk(dot, self._root)
        except (_Break, _Continue):  # pragma: no cover - rejected by the parser
            pass
        return "".join(state.out)

    def render(self, obj, *, missingkey: str = "default") -> str:
        """Execute the template with ``obj`` as dot.

        ``missingkey`` is Go's option: ``"default"`` prints ``<no value>`` for a missing map
        key, ``"error"`` makes it an error (``docker inspect``'s raw-JSON fallback uses it).
        """
        try:
            return self._execute(obj, _FUNCS, missingkey)
        except _ExecError as e:
            raise TemplateError(f"template parsing error: {e}") from None

    def _render_header(self, header) -> str:
        # Docker ignores errors here and keeps what was written before the failure.
        try:
            return self._execute(header, _HEADER_FUNCS, "default")
        except _ExecError as e:
            return e.output


_CACHE: dict[str, Template] = {}
_CACHE_MAX = 256


def compile(fmt: str) -> Template:  # the natural name; shadows the builtin only in here
    """Parse ``fmt`` as Docker does (``templates.Parse``); cached per string.

    Raises TemplateError ``template parsing error: template: :1: ...`` when it does not parse.
    """
    tmpl = _CACHE.get(fmt)
    if tmpl is not None:
        return tmpl
    parser = _Parser(fmt, _FUNCS)
    try:
        root = parser.parse()
    except _ParseError as e:
        raise TemplateError(f"template parsing error: {e}") from None
    tmpl = Template(fmt, root, parser.defs)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[fmt] = tmpl
    return tmpl


def is_table(fmt: str) -> bool:
    """Whether ``fmt`` asks for a table (Docker: it starts with ``table``)."""
    return fmt.startswith(TABLE_PREFIX)


def preprocess(fmt: str) -> str:
    """Docker's formatter preprocessing: drop the ``table`` prefix, expand ``json`` to
    ``{{json .}}``, trim spaces, and turn the two-character ``\\t`` and ``\\n`` into a tab and
    a newline.  (``docker inspect --format`` does none of this.)"""
    if is_table(fmt):
        fmt = fmt[len(TABLE_PREFIX) :]
    elif fmt == "json":
        fmt = JSON_FORMAT
    fmt = fmt.strip(" ")
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


_CAMEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def default_header(field: str) -> str:
    """The column title for a field when the caller gives none: ``CreatedAt`` -> ``CREATED AT``."""
    words = _CAMEL_WORD.findall(field)
    return " ".join(words).upper() if words else field.upper()


class _HeaderMap(dict):
    """The data a table's header row is rendered from: field name -> column title."""

    __slots__ = ()

    def __missing__(self, key):
        if not isinstance(key, str):
            raise KeyError(key)
        return default_header(key)


def format_table(fmt: str, rows, headers: dict[str, str] | None = None) -> str:
    """Render ``rows`` with a ``table ...`` format, as ``docker ps``/``images`` do.

    The header row is the same template rendered over ``{field: title}``: titles come from
    ``headers`` (e.g. ``{"ID": "IMAGE ID", "CreatedSince": "CREATED"}``) or
    :func:`default_header`.  Columns are aligned by :func:`tabwriter` with Docker's settings.
    The header is printed even when there are no rows.
    """
    tmpl = compile(preprocess(fmt))
    body = [tmpl.render(row) + "\n" for row in rows]
    header = tmpl._render_header(_HeaderMap(headers or {}))
    return tabwriter(header + "\n" + "".join(body))


def render_lines(fmt: str, objs, headers: dict[str, str] | None = None) -> str:
    """Render each object on its own line with a ``--format`` value (a ``table`` format is
    passed to :func:`format_table`)."""
    if is_table(fmt):
        return format_table(fmt, objs, headers)
    tmpl = compile(preprocess(fmt))
    return "".join(tmpl.render(obj) + "\n" for obj in objs)
