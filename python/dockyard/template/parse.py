"""The parse tree and parser (Go's text/template/parse/node.go and parse.go)."""

from __future__ import annotations

import math
import re

from .values import _go_quote
from .lex import (
    ASSIGN,
    BOOL,
    CHAR,
    CHARCONST,
    COMPLEX,
    DECLARE,
    DOT,
    EOF,
    ERROR,
    FIELD,
    IDENT,
    LDELIM,
    LPAREN,
    NIL,
    NUMBER,
    PIPE,
    RAWSTRING,
    RDELIM,
    RPAREN,
    SPACE,
    STRING,
    TEXT,
    VAR,
    _Tok,
    _lex,
)


# =============================================================================================
# parse tree (text/template/parse/node.go)

class _Node:
    __slots__ = ("pos",)


class _List(_Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int) -> None:
        self.pos, self.nodes = pos, []

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text

    def __str__(self) -> str:
        return self.text


class _Action(_Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos: int, line: int, pipe) -> None:
        self.pos, self.line, self.pipe = pos, line, pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


class _Pipe(_Node):
    __slots__ = ("line", "is_assign", "decl", "cmds")

    def __init__(self, pos: int, line: int) -> None:
        self.pos, self.line, self.is_assign, self.decl, self.cmds = pos, line, False, [], []

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class _Command(_Node):
    __slots__ = ("args",)

    def __init__(self, pos: int) -> None:
        self.pos, self.args = pos, []

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _Pipe) else str(a) for a in self.args)


class _Field(_Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos, self.ident = pos, ident

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


class _Variable(_Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos, self.ident = pos, ident

    def __str__(self) -> str:
        return ".".join(self.ident)


class _Chain(_Node):
    __slots__ = ("node", "fields")

    def __init__(self, pos: int, node) -> None:
        self.pos, self.node, self.fields = pos, node, []

    def __str__(self) -> str:
        s = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return s + "".join("." + f for f in self.fields)


class _Identifier(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        self.pos, self.name = pos, name

    def __str__(self) -> str:
        return self.name


class _Dot(_Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "."


class _Nil(_Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "nil"


class _Bool(_Node):
    __slots__ = ("val",)

    def __init__(self, pos: int, val: bool) -> None:
        self.pos, self.val = pos, val

    def __str__(self) -> str:
        return "true" if self.val else "false"


class _Number(_Node):
    __slots__ = ("text", "is_int", "is_uint", "int_val", "is_float", "float_val")

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text
        self.is_int = self.is_uint = self.is_float = False
        self.int_val, self.float_val = 0, 0.0

    def __str__(self) -> str:
        return self.text


class _String(_Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos: int, quoted: str, text: str) -> None:
        self.pos, self.quoted, self.text = pos, quoted, text

    def __str__(self) -> str:
        return self.quoted


class _Branch(_Node):
    __slots__ = ("kind", "line", "pipe", "list", "else_list")

    def __init__(self, kind: str, pos: int, line: int, pipe, lst, else_list) -> None:
        self.kind, self.pos, self.line, self.pipe = kind, pos, line, pipe
        self.list, self.else_list = lst, else_list

    def __str__(self) -> str:
        s = "{{" + self.kind + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


class _TemplateCall(_Node):
    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos: int, line: int, name: str, pipe) -> None:
        self.pos, self.line, self.name, self.pipe = pos, line, name, pipe

    def __str__(self) -> str:
        if self.pipe is None:
            return "{{template " + _go_quote(self.name) + "}}"
        return "{{template " + _go_quote(self.name) + " " + str(self.pipe) + "}}"


class _Keyword(_Node):
    """``{{end}}``, ``{{else}}``, ``{{break}}`` and ``{{continue}}``."""

    __slots__ = ("word",)

    def __init__(self, word: str, pos: int) -> None:
        self.word, self.pos = word, pos

    def __str__(self) -> str:
        return "{{" + self.word + "}}"


# =============================================================================================
# parser (text/template/parse/parse.go)

class _ParseError(Exception):
    pass


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\"}


def _unquote(quoted: str) -> str:
    """``strconv.Unquote`` for template string and character literals."""
    q = quoted[0]
    body = quoted[1:-1]
    if q == "`":
        return body.replace("\r", "")
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == q or (q == "'" and c == "\n"):
            raise _ParseError("invalid syntax")
        if c != "\\":
            out += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        i += 1
        if i >= n:
            raise _ParseError("invalid syntax")
        c = body[i]
        i += 1
        if c in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[c].encode()
        elif c == q:
            out += c.encode()
        elif c in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[c]
            h = body[i : i + size]
            if len(h) != size or not all(ch in "0123456789abcdefABCDEF" for ch in h):
                raise _ParseError("invalid syntax")
            i += size
            v = int(h, 16)
            if c == "x":
                if q == "'":
                    out += chr(v).encode()
                else:
                    out.append(v)
            else:
                if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                    raise _ParseError("invalid syntax")
                out += chr(v).encode()
        elif c in "01234567":
            o = body[i - 1 : i + 2]
            if len(o) != 3 or not all(ch in "01234567" for ch in o):
                raise _ParseError("invalid syntax")
            i += 2
            v = int(o, 8)
            if v > 255:
                raise _ParseError("invalid syntax")
            if q == "'":
                out += chr(v).encode()
            else:
                out.append(v)
        else:
            raise _ParseError("invalid syntax")
    return out.decode("utf-8", "replace")


_OCTAL_LEGACY = re.compile(r"[+-]?0[0-7_]+")


def _parse_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)``-like (with Go's legacy ``0777`` octal)."""
    t = text
    if "__" in t or t.endswith("_"):
        return None
    try:
        if _OCTAL_LEGACY.fullmatch(t):
            sign = -1 if t.startswith("-") else 1
            return sign * int(t.lstrip("+-")[1:].replace("_", "") or "0", 8)
        return int(t, 0)
    except ValueError:
        return None


def _parse_float_literal(text: str) -> float | None:
    try:
        if text.lstrip("+-")[:2] in ("0x", "0X"):
            return float.fromhex(text.replace("_", ""))
        if "_" in text:  # Go allows underscores in floats only after a base prefix
            return None
        return float(text)
    except ValueError:
        return None


class _Parser:
    def __init__(self, text: str, funcs) -> None:
        self.text = text
        self.toks = _lex(text)
        self.last = len(self.toks) - 1
        self.i = 0
        self.hi = 0
        self.funcs = funcs
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.defs: dict[str, _List] = {}

    # -- token stream
    def next(self) -> _Tok:
        k = min(self.i, self.last)
        self.i += 1
        if k > self.hi:
            self.hi = k
        return self.toks[k]

    def backup(self, k: int = 1) -> None:
        self.i -= k

    def peek(self) -> _Tok:
        t = self.next()
        self.i -= 1
        return t

    def next_non_space(self) -> _Tok:
        while True:
            t = self.next()
            if t.typ != SPACE:
                return t

    def peek_non_space(self) -> _Tok:
        t = self.next_non_space()
        self.i -= 1
        return t

    # -- errors
    def errorf(self, msg: str):
        line = self.toks[min(self.hi, self.last)].line
        raise _ParseError(f"template: :{line}: {msg}")

    def unexpected(self, tok: _Tok, context: str):
        if tok.typ == ERROR:
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = f" in action started at :{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            self.errorf(f"{tok}{extra}")
        self.errorf(f"unexpected {tok} in {context}")

    def expect(self, typ: str, context: str) -> _Tok:
        tok = self.next_non_space()
        if tok.typ != typ:
            self.unexpected(tok, context)
        return tok

    # -- grammar
    def parse(self) -> _List:
        root = _List(self.peek().pos)
        while self.peek().typ != EOF:
            if self.peek().typ == LDELIM:
                mark = self.i
                self.next()
                if self.next_non_space().typ == "define":
                    self.parse_definition()
                    continue
                self.i = mark
            n = self.text_or_action()
            if isinstance(n, _Keyword) and n.word in ("end", "else"):
                self.errorf(f"unexpected {n}")
            root.nodes.append(n)
        return root

    def add_definition(self, name: str, root: _List) -> None:
        old = self.defs.get(name)
        if old is None or _is_empty_tree(old):
            self.defs[name] = root
        elif not _is_empty_tree(root):
            self.errorf(f"template: multiple definition of template {_go_quote(name)}")

    def parse_definition(self) -> None:
        context = "define clause"
        tok = self.next_non_space()
        if tok.typ not in (STRING, RAWSTRING):
            self.unexpected(tok, context)
        try:
            name = _unquote(tok.val)
        except _ParseError as e:
            self.errorf(str(e))
        self.expect(RDELIM, context)
        saved_vars, self.vars = self.vars, ["$"]
        root, end = self.item_list()
        self.vars = saved_vars
        if not (isinstance(end, _Keyword) and end.word == "end"):
            self.errorf(f"unexpected {end} in {context}")
        self.add_definition(name, root)

    def item_list(self):
        lst = _List(self.peek_non_space().pos)
        while self.peek_non_space().typ != EOF:
            n = self.text_or_action()
            if isinstance(n, _Keyword) and n.word in ("end", "else"):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self):
        tok = self.next_non_space()
        if tok.typ == TEXT:
            return _Text(tok.pos, tok.val)
        if tok.typ == LDELIM:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(tok, "input")

    def action(self):
        tok = self.next_non_space()
        typ = tok.typ
        if typ == "block":
            return self.block_control()
        if typ in ("break", "continue"):
            t = self.next_non_space()
            if t.typ != RDELIM:
                self.unexpected(t, "{{" + typ + "}}")
            if self.range_depth == 0:
                self.errorf("{{" + typ + "}} outside {{range}}")
            return _Keyword(typ, tok.pos)
        if typ == "else":
            return self.else_control()
        if typ == "end":
            return _Keyword("end", self.expect(RDELIM, "end").pos)
        if typ in ("if", "range", "with"):
            return self.branch_control(typ)
        if typ == "template":
            return self.template_control()
        self.backup()
        tok = self.peek()
        return _Action(tok.pos, tok.line, self.pipeline("command", RDELIM))

    def branch_control(self, context: str):
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, RDELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if nxt.word == "else":
                if context in ("if", "with") and self.peek().typ == context:
                    self.next()
                    else_list = _List(nxt.pos)
                    else_list.nodes.append(self.branch_control(context))
                else:
                    else_list, nxt = self.item_list()
                    if nxt.word != "end":
                        self.errorf(f"expected end; found {nxt}")
            return _Branch(context, pipe.pos, pipe.line, pipe, lst, else_list)
        finally:
            del self.vars[mark:]

    def else_control(self):
        peek = self.peek_non_space()
        if peek.typ in ("if", "with"):
            return _Keyword("else", peek.pos)
        return _Keyword("else", self.expect(RDELIM, "else").pos)

    def template_name(self, tok: _Tok, context: str) -> str:
        if tok.typ not in (STRING, RAWSTRING):
            self.unexpected(tok, context)
        try:
            return _unquote(tok.val)
        except _ParseError as e:
            self.errorf(str(e))

    def template_control(self):
        context = "template clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = None
        if self.next_non_space().typ != RDELIM:
            self.backup()
            pipe = self.pipeline(context, RDELIM)
        return _TemplateCall(tok.pos, tok.line, name, pipe)

    def block_control(self):
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, RDELIM)
        saved_vars, self.vars = self.vars, ["$"]
        saved_depth, self.range_depth = self.range_depth, 0
        root, end = self.item_list()
        self.vars, self.range_depth = saved_vars, saved_depth
        if end.word != "end":
            self.errorf(f"unexpected {end} in {context}")
        self.add_definition(name, root)
        return _TemplateCall(tok.pos, tok.line, name, pipe)

    def pipeline(self, context: str, end: str) -> _Pipe:
        tok = self.peek_non_space()
        pipe = _Pipe(tok.pos, tok.line)
        while True:  # declarations: "$x :=", "$x =", "$i, $v :="
            v = self.peek_non_space()
            if v.typ != VAR:
                break
            mark = self.i
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in (ASSIGN, DECLARE):
                pipe.is_assign = nxt.typ == ASSIGN
                self.next_non_space()
                pipe.decl.append(_Variable(v.pos, [v.val]))
                self.vars.append(v.val)
                break
            if nxt.typ == CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(_Variable(v.pos, [v.val]))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (VAR, RDELIM, RPAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            # not a declaration: put the variable back
            self.i = mark
            break
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if tok.typ in (BOOL, CHARCONST, COMPLEX, DOT, FIELD, IDENT, NUMBER, NIL, RAWSTRING,
                           STRING, VAR, LPAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def check_pipeline(self, pipe: _Pipe, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (_Bool, _Dot, _Nil, _Number, _String)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.typ == SPACE:
                continue
            if tok.typ in (RDELIM, RPAREN):
                self.backup()
            elif tok.typ == PIPE:
                pass
            else:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == FIELD:
            chain = _Chain(self.peek().pos, node)
            while self.peek().typ == FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, _Field):
                return _Field(chain.pos, node.ident + chain.fields)
            if isinstance(node, _Variable):
                return _Variable(chain.pos, node.ident + chain.fields)
            if isinstance(node, (_Bool, _String, _Number, _Nil, _Dot)):
                self.errorf(f"unexpected . after term {_go_quote(str(node))}")
            return chain
        return node

    def term(self):
        tok = self.next_non_space()
        typ = tok.typ
        if typ == IDENT:
            if tok.val not in self.funcs:
                self.errorf(f"function {_go_quote(tok.val)} not defined")
            return _Identifier(tok.pos, tok.val)
        if typ == DOT:
            return _Dot(tok.pos)
        if typ == NIL:
            return _Nil(tok.pos)
        if typ == VAR:
            if tok.val not in self.vars:
                self.errorf(f"undefined variable {_go_quote(tok.val)}")
            return _Variable(tok.pos, [tok.val])
        if typ == FIELD:
            return _Field(tok.pos, [tok.val[1:]])
        if typ == BOOL:
            return _Bool(tok.pos, tok.val == "true")
        if typ in (CHARCONST, NUMBER):
            return self.number(tok)
        if typ == COMPLEX:
            self.errorf(f"complex constants are not supported: {tok.val}")
        if typ == LPAREN:
            return self.pipeline("parenthesized pipeline", RPAREN)
        if typ in (STRING, RAWSTRING):
            try:
                return _String(tok.pos, tok.val, _unquote(tok.val))
            except _ParseError as e:
                self.errorf(str(e))
        self.backup()
        return None

    def number(self, tok: _Tok) -> _Number:
        text = tok.val
        node = _Number(tok.pos, text)
        if tok.typ == CHARCONST:
            if len(text) < 3:
                self.errorf("invalid syntax")
            try:
                s = _unquote(text)
            except _ParseError as e:
                self.errorf(str(e))
            if len(s) != 1:
                self.errorf(f"malformed character constant: {text}")
            node.is_int = node.is_uint = node.is_float = True
            node.int_val = ord(s)
            node.float_val = float(node.int_val)
            return node
        if text.endswith("i"):
            self.errorf(f"complex constants are not supported: {text}")
        iv = _parse_int(text)
        if iv is not None and -(1 << 63) <= iv < (1 << 64):
            node.is_float, node.float_val = True, float(iv)
            node.is_uint = iv >= 0
            node.is_int = iv < (1 << 63)
            node.int_val = iv
            return node
        fv = _parse_float_literal(text)
        if fv is None or math.isinf(fv):
            self.errorf(f"illegal number syntax: {_go_quote(text)}")
        if not any(c in text for c in ".eEpP"):
            self.errorf(f"integer overflow: {_go_quote(text)}")
        node.is_float, node.float_val = True, fv
        if fv == int(fv) and -(1 << 63) <= fv < (1 << 63):
            node.is_int, node.int_val = True, int(fv)
        return node


def _is_empty_tree(n) -> bool:
    if isinstance(n, _List):
        return all(_is_empty_tree(x) for x in n.nodes)
    if isinstance(n, _Text):
        return n.text.strip() == ""
    return False
