"""The executor (Go's text/template/exec.go): walks a parse tree over Python values."""

from __future__ import annotations

from .values import (
    Struct,
    _MISSING,
    _NOVALUE,
    _go_quote,
    _go_type,
    _is_int,
    _is_map,
    _sorted_keys,
    _truth,
)
from .fmt import _fmt_v
from .funcs import _Fn, _FuncError, _KIND_TYPE
from .parse import (
    _Action,
    _Bool,
    _Branch,
    _Chain,
    _Command,
    _Dot,
    _Field,
    _Identifier,
    _Keyword,
    _List,
    _Nil,
    _Number,
    _Pipe,
    _String,
    _TemplateCall,
    _Text,
    _Variable,
)


# =============================================================================================
# executor (text/template/exec.go)

class _ExecError(Exception):
    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_SCALARS = (str, int, float, complex, bytes, bytearray, list, tuple)
_MAX_DEPTH = 200  # nested {{template}} calls; Go allows 100000, Python's stack does not


class _State:
    __slots__ = ("text", "defs", "funcs", "missingkey", "out", "vars", "node", "name", "depth")

    def __init__(self, text, defs, funcs, missingkey) -> None:
        self.text, self.defs, self.funcs, self.missingkey = text, defs, funcs, missingkey
        self.out: list[str] = []
        self.vars: list[list] = []
        self.node = None
        self.name = ""
        self.depth = 0

    # -- errors
    def errorf(self, msg: str):
        node = self.node
        name = _go_quote(self.name)
        if node is None:
            text = f"template: {self.name}: {msg}"
        else:
            before = self.text[: node.pos]
            line = before.count("\n") + 1
            col = len(before[before.rfind("\n") + 1 :].encode("utf-8", "surrogatepass"))
            text = f"template: :{line}:{col}: executing {name} at <{node}>: {msg}"
        raise _ExecError(text, "".join(self.out))

    # -- variables
    def var_value(self, name: str):
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                return self.vars[k][1]
        self.errorf(f"undefined variable: {name}")

    def set_var(self, name: str, value) -> None:
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                self.vars[k][1] = value
                return
        self.errorf(f"undefined variable: {name}")

    # -- walking the tree
    def walk(self, dot, node) -> None:
        self.node = node
        t = type(node)
        if t is _Text:
            self.out.append(node.text)
        elif t is _Action:
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif t is _List:
            for n in node.nodes:
                self.walk(dot, n)
        elif t is _Branch:
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif t is _TemplateCall:
            self.walk_template(dot, node)
        elif t is _Keyword:
            raise _Break() if node.word == "break" else _Continue()
        else:  # pragma: no cover - the parser builds no other nodes
            self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, dot, node: _Branch) -> None:
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if _truth(val):
                self.walk(val if node.kind == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot, node: _Branch) -> None:
        self.node = node
        mark0 = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            mark = len(self.vars)
            decl = node.pipe.decl
            if val is None or val is _NOVALUE:
                items = None
            elif isinstance(val, (list, tuple, bytes, bytearray)):
                items = list(enumerate(val))
            elif _is_map(val):
                items = [(k, val[k]) for k in _sorted_keys(val)]
            elif _is_int(val):
                if len(decl) > 1:
                    self.errorf(f"can't use {val} to iterate over more than one variable")
                items = [(i, i) for i in range(val)]
            elif hasattr(val, "__iter__") and not isinstance(val, (str, Struct)):
                items = list(enumerate(val))
            else:
                self.errorf(f"range can't iterate over {_fmt_v(val)}")
            if items:
                for index, elem in items:
                    if decl:
                        if node.pipe.is_assign:
                            if len(decl) > 1:
                                self.set_var(decl[0].ident[0], index)
                                self.set_var(decl[1].ident[0], elem)
                            else:
                                self.set_var(decl[0].ident[0], elem)
                        else:
                            self.vars[-1][1] = elem
                            if len(decl) > 1:
                                self.vars[-2][1] = index
                    try:
                        self.walk(elem, node.list)
                    except _Continue:
                        pass
                    except _Break:
                        break
                    finally:
                        del self.vars[mark:]
                return
            if node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark0:]

    def walk_template(self, dot, node: _TemplateCall) -> None:
        self.node = node
        root = self.defs.get(node.name)
        if root is None:
            self.errorf(f"template {_go_quote(node.name)} not defined")
        if self.depth >= _MAX_DEPTH:
            self.errorf(f"exceeded maximum template depth ({_MAX_DEPTH})")
        dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else _NOVALUE
        saved = (self.vars, self.name)
        self.vars, self.name = [["$", dot]], node.name
        self.depth += 1
        try:
            self.walk(dot, root)
        finally:
            self.depth -= 1
            self.vars, self.name = saved

    def print_value(self, node, v) -> None:
        self.node = node
        if v is None or v is _NOVALUE:
            self.out.append("<no value>")
        elif type(v) is str:
            self.out.append(v)
        else:
            self.out.append(_fmt_v(v))

    # -- evaluation
    def eval_pipeline(self, dot, pipe: _Pipe):
        self.node = pipe
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # a nil interface{} becomes "no value" (Go's "lovely!" step)
                value = _NOVALUE
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append([var.ident[0], value])
        return value

    def not_a_function(self, args, final) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot, cmd: _Command, final):
        first = cmd.args[0]
        t = type(first)
        if t is _Field:
            return self.eval_field_node(dot, first, cmd.args, final)
        if t is _Chain:
            return self.eval_chain_node(dot, first, cmd.args, final)
        if t is _Identifier:
            return self.eval_function(dot, first, cmd, cmd.args[1:], final)
        if t is _Pipe:
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if t is _Variable:
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if t is _Bool:
            return first.val
        if t is _Dot:
            return dot
        if t is _Nil:
            self.errorf("nil is not a command")
        if t is _Number:
            return self.ideal_constant(first)
        if t is _String:
            return first.text
        self.errorf(f"can't evaluate command {_go_quote(str(first))}")

    def ideal_constant(self, n: _Number):
        self.node = n
        text = n.text
        is_hex_int = (len(text) > 2 and text[0] == "0" and text[1] in "xX"
                      and "p" not in text and "P" not in text)
        if n.is_float and not is_hex_int and text[0] != "'" and any(c in text for c in ".eEpP"):
            return n.float_val
        if n.is_int:
            return n.int_val
        if n.is_uint:
            self.errorf(f"{text} overflows int")
        return _NOVALUE

    def eval_field_node(self, dot, field: _Field, args, final):
        self.node = field
        return self.eval_field_chain(dot, dot, field, field.ident, args, final)

    def eval_chain_node(self, dot, chain: _Chain, args, final):
        self.node = chain
        if isinstance(chain.node, _Nil):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, "any", chain.node)
        if pipe is None:
            pipe = _NOVALUE
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable_node(self, dot, var: _Variable, args, final):
        self.node = var
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot, receiver, node, ident, args, final):
        for name in ident[:-1]:
            receiver = self.eval_field(dot, name, node, None, _MISSING, receiver)
        return self.eval_field(dot, ident[-1], node, args, final, receiver)

    def eval_field(self, dot, name: str, node, args, final, receiver):
        if receiver is _NOVALUE:
            if self.missingkey == "error":
                self.errorf(f"nil data; no entry for key {_go_quote(name)}")
            return _NOVALUE
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        if _is_map(receiver):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            try:
                return receiver[name]
            except KeyError:
                if self.missingkey == "error":
                    self.errorf(f"map has no entry for key {_go_quote(name)}")
                if self.missingkey == "zero":
                    return None
                return _NOVALUE
        if isinstance(receiver, Struct):
            if name in receiver:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return receiver[name]
        elif not isinstance(receiver, _SCALARS) and not name.startswith("_"):
            try:
                attr = getattr(receiver, name)
            except AttributeError:
                pass
            else:
                if callable(attr) and not isinstance(attr, type):
                    fn = _Fn(attr, (), "any", builtin=False)
                    return self.eval_call(dot, fn, name, node, args[1:] if args else [], final)
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return attr
        self.errorf(f"can't evaluate field {name} in type {_go_type(receiver)}")

    def eval_function(self, dot, ident: _Identifier, cmd, args, final):
        self.node = ident
        fn = self.funcs.get(ident.name)
        if fn is None:
            self.errorf(f"{_go_quote(ident.name)} is not a defined function")
        return self.eval_call(dot, fn, ident.name, cmd, args, final)

    def eval_call(self, dot, fn: _Fn, name: str, node, args, final):
        num_in = len(args) + (final is not _MISSING)
        params, variadic = fn.params, fn.variadic
        if variadic is not None:
            if num_in < len(params):
                self.errorf(f"wrong number of args for {name}: "
                            f"want at least {len(params)} got {len(args)}")
        elif num_in != len(params):
            self.errorf(f"wrong number of args for {name}: want {len(params)} got {num_in}")

        if fn.builtin and name in ("and", "or"):
            v = _NOVALUE
            for arg in args:
                v = self.eval_arg(dot, "value", arg)
                if _truth(v) == (name == "or"):
                    return v
            if final is not _MISSING:
                v = self.validate_type(final, "value")
            return v

        argv = []
        i = 0
        while i < len(params) and i < len(args):
            argv.append(self.eval_arg(dot, params[i], args[i]))
            i += 1
        if variadic is not None:
            for arg in args[i:]:
                argv.append(self.eval_arg(dot, variadic, arg))
        if final is not _MISSING:
            if variadic is not None:
                kind = params[num_in - 1] if num_in - 1 < len(params) else variadic
            else:
                kind = params[-1]
            argv.append(self.validate_type(final, kind))
        try:
            return fn.impl(*argv)
        except _FuncError as e:
            self.node = node
            self.errorf(f"error calling {name}: {e}")
        except Exception as e:
            if fn.builtin:
                raise
            self.node = node
            self.errorf(f"error calling {name}: {e}")

    def validate_type(self, value, kind: str):
        if value is _NOVALUE:
            if kind in ("any", "value", "[]string"):
                return None
            self.errorf(f"invalid value; expected {_KIND_TYPE[kind]}")
        if kind in ("any", "value"):
            return value
        if kind == "string":
            ok = isinstance(value, str)
        elif kind == "int":
            ok = _is_int(value)
        else:  # []string
            ok = isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value)
        if not ok:
            self.errorf(f"wrong type for value; expected {_KIND_TYPE[kind]}; got {_go_type(value)}")
        return value

    def eval_arg(self, dot, kind: str, n):
        self.node = n
        t = type(n)
        if t is _Dot:
            return self.validate_type(dot, kind)
        if t is _Nil:
            if kind in ("any", "value", "[]string"):
                return None
            self.errorf(f"cannot assign nil to {_KIND_TYPE[kind]}")
        if t is _Field:
            return self.validate_type(self.eval_field_node(dot, n, [n], _MISSING), kind)
        if t is _Variable:
            return self.validate_type(self.eval_variable_node(dot, n, None, _MISSING), kind)
        if t is _Pipe:
            return self.validate_type(self.eval_pipeline(dot, n), kind)
        if t is _Identifier:
            return self.validate_type(self.eval_function(dot, n, n, [], _MISSING), kind)
        if t is _Chain:
            return self.validate_type(self.eval_chain_node(dot, n, None, _MISSING), kind)
        if kind == "string":
            if t is _String:
                return n.text
            self.errorf(f"expected string; found {n}")
        if kind == "int":
            if t is _Number and n.is_int:
                return n.int_val
            if t is _Number and n.is_uint:
                self.errorf(f"{n} overflows int")
            self.errorf(f"expected integer; found {n}")
        if kind in ("any", "value"):
            if t is _Bool:
                return n.val
            if t is _Number:
                return self.ideal_constant(n)
            if t is _String:
                return n.text
        self.errorf(f"can't handle {n} for arg of type {_KIND_TYPE[kind]}")
