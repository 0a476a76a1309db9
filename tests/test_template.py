"""dockyard.template against Go's text/template + Docker's template functions and tables.

Expected outputs are what ``docker ... --format`` prints for the same data (Go's fmt, encoding/json
and Docker's tabwriter rules), worked out from Go's documented behaviour.
"""

from dataclasses import dataclass, field

import pytest

from dockyard.errors import InvalidArgument, TemplateError
from dockyard.template import (
    Struct,
    compile,
    default_header,
    format_table,
    is_table,
    preprocess,
    render_lines,
    tabwriter,
)


@dataclass
class Image:
    Repository: str = "busybox"
    Tag: str = "latest"
    Size: int = 4261237
    Labels: dict = field(default_factory=lambda: {"b": "2", "a": "1"})

    def Label(self, name):
        return self.Labels.get(name, "")

    def Fail(self):
        raise RuntimeError("boom")


DATA = {
    "A": 1,
    "B": 2,
    "S": "hello",
    "U": "héllo",
    "F": 3.5,
    "T": True,
    "Z": 0,
    "E": "",
    "Null": None,
    "L": ["a", "b", "c"],
    "N": [1, 2, 3, 4, 5],
    "Empty": [],
    "M": {"z": 26, "a": 1, "m": {"k": "v"}},
    "LM": [{"Name": "x", "Port": 80}, {"Name": "y", "Port": 443}],
    "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
    "Img": Image(),
    "Cfg": Struct(Hostname="h", Env=["A=1", "B=2"], Labels={"y": "2", "x": "1"}),
}


def render(fmt, data=DATA, **kw):
    return compile(fmt).render(data, **kw)


RENDER_CASES = [
    # fields, dot, root
    ("plain text", "plain text"),
    ("{{.A}}", "1"),
    ("{{.S}} {{.F}} {{.T}} {{.Z}}", "hello 3.5 true 0"),
    ("{{.M.z}} {{.M.m.k}}", "26 v"),
    ("{{.Cfg.Hostname}}", "h"),
    ("{{.Img.Repository}}:{{.Img.Tag}}", "busybox:latest"),
    ("{{.Img.Label \"a\"}}", "1"),
    ("{{$.A}}", "1"),
    ("{{with .M}}{{$.S}}{{end}}", "hello"),
    # missing and nil
    ("{{.Missing}}", "<no value>"),
    ("{{.Missing.Deeper}}", "<no value>"),
    ("{{.Null}}", "<no value>"),
    ("{{print .Null}}", "<nil>"),
    ("{{print .Missing}}", "<nil>"),
    ("{{printf \"%v\" .Missing}}", "<nil>"),
    ("{{.M.nope}}", "<no value>"),
    ("{{(.Missing).X}}", "<no value>"),
    # printing values like fmt's %v
    ("{{.L}}", "[a b c]"),
    ("{{.M}}", "map[a:1 m:map[k:v] z:26]"),
    ("{{.LM}}", "[map[Name:x Port:80] map[Name:y Port:443]]"),
    ("{{.Empty}}", "[]"),
    ("{{.Cfg}}", "{h [A=1 B=2] map[x:1 y:2]}"),
    ("{{.Img}}", "{busybox latest 4261237 map[a:1 b:2]}"),
    ("{{printf \"%+v\" .Cfg}}", "{Hostname:h Env:[A=1 B=2] Labels:map[x:1 y:2]}"),
    # literals
    ("{{1}} {{-3}} {{1.5}} {{1.0}} {{1e3}} {{1e6}} {{0x1F}} {{017}} {{0o17}} {{0b101}} {{1_000}}",
     "1 -3 1.5 1 1000 1e+06 31 15 15 5 1000"),
    ("{{'a'}} {{'\\n'}} {{true}} {{false}}", "97 10 true false"),
    ("{{\"a\\tb\\u00e9\\x41\"}}", "a\tbéA"),
    ("{{`raw\\n`}}", "raw\\n"),
    ("{{\"\"}}", ""),
    # whitespace trimming and comments
    ("a  {{- .A -}}  b", "a1b"),
    ("a {{-1}} b", "a -1 b"),
    ("a\n\t {{- .A}}", "a1"),
    ("{{.A -}}\n\n  x", "1x"),
    ("a{{/* comment */}}b", "ab"),
    ("a {{- /* comment */ -}} b", "ab"),
    ("{{/* multi\nline */}}x", "x"),
    ("{{ .A\n}}", "1"),
    # variables and scope
    ("{{$x := .A}}{{$x}}", "1"),
    ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
    ("{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}", "21"),
    ("{{$x := .M}}{{$x.z}}", "26"),
    ("{{with $v := .S}}{{$v}}{{end}}", "hello"),
    ("{{$}}", None),  # checked separately: prints the whole map
    # if / else if / else
    ("{{if .T}}yes{{end}}", "yes"),
    ("{{if .Z}}yes{{else}}no{{end}}", "no"),
    ("{{if .E}}yes{{else}}no{{end}}", "no"),
    ("{{if .Empty}}yes{{else}}no{{end}}", "no"),
    ("{{if .Missing}}yes{{else}}no{{end}}", "no"),
    ("{{if .Cfg}}struct is true{{end}}", "struct is true"),
    ("{{if eq .A 2}}one{{else if eq .A 1}}two{{else}}three{{end}}", "two"),
    ("{{if eq .A 5}}a{{else if eq .A 6}}b{{else}}c{{end}}", "c"),
    ("{{if and .T (not .Z)}}ok{{end}}", "ok"),
    ("{{if or .Z .E .S}}ok{{end}}", "ok"),
    # with
    ("{{with .M}}{{.z}}{{end}}", "26"),
    ("{{with .E}}x{{else}}empty{{end}}", "empty"),
    ("{{with .Missing}}x{{else with .S}}{{.}}{{end}}", "hello"),
    # range
    ("{{range .L}}{{.}},{{end}}", "a,b,c,"),
    ("{{range $i, $v := .L}}{{$i}}={{$v}} {{end}}", "0=a 1=b 2=c "),
    ("{{range $v := .L}}{{$v}}{{end}}", "abc"),
    ("{{range $k, $v := .M}}{{$k}};{{end}}", "a;m;z;"),
    ("{{range .M}}{{.}} {{end}}", "1 map[k:v] 26 "),
    ("{{range .LM}}{{.Name}}:{{.Port}} {{end}}", "x:80 y:443 "),
    ("{{range .Empty}}x{{else}}none{{end}}", "none"),
    ("{{range .Missing}}x{{else}}none{{end}}", "none"),
    ("{{range .L}}{{$.A}}{{end}}", "111"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{range .N}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}", "13"),
    ("{{range $i, $p := .Ports}}{{$i}} -> {{(index $p 0).HostPort}}{{end}}", "80/tcp -> 8080"),
    # index, slice, len
    ("{{index .M \"z\"}}", "26"),
    ("{{index .M \"m\" \"k\"}}", "v"),
    ("{{index .M \"nope\"}}", "<no value>"),
    ("{{index .L 1}}", "b"),
    ("{{index .LM 1 \"Name\"}}", "y"),
    ("{{(index .LM 0).Port}}", "80"),
    ("{{(index (index .Ports \"80/tcp\") 0).HostPort}}", "8080"),
    ("{{index .S 1}}", "101"),  # a byte, as in Go
    ("{{index .Cfg.Labels \"x\"}}", "1"),
    ("{{slice .L 1}} {{slice .L 1 2}} {{slice .S 1 3}} {{slice .U 1 3}}", "[b c] [b] el é"),
    ("{{len .L}} {{len .M}} {{len .S}} {{len .U}} {{len .Empty}}", "3 3 5 6 0"),
    # comparisons
    ("{{eq .A 1}} {{eq .A 2}} {{eq .A 2 3 1}} {{eq .S \"hello\"}}", "true false true true"),
    ("{{ne .A 1}} {{lt .A 2}} {{le .A 1}} {{gt .A 1}} {{ge .A 1}}", "false true true false true"),
    ("{{lt \"a\" \"b\"}} {{lt 1.5 2.5}} {{eq .T true}}", "true true true"),
    ("{{eq .Missing \"x\"}} {{eq .Null 1}}", "false false"),
    ("{{not .T}} {{not .Z}} {{not .Missing}}", "false true true"),
    ("{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" \"x\"}} {{or 0 .E}}", "0 2 x "),
    # pipelines and parentheses
    ("{{.S | printf \"%s!\"}}", "hello!"),
    ("{{\"x\" | printf \"%s%s\" \"y\"}}", "yx"),
    ("{{.S | upper | lower}}", "hello"),
    ("{{.L | len}}", "3"),
    ("{{(len .L)}}", "3"),
    ("{{printf \"%d-%d\" (len .L) (len .N)}}", "3-5"),
    ("{{.M | json}}", '{"a":1,"m":{"k":"v"},"z":26}'),
    ("{{.A | print}}", "1"),
    # print family
    ("{{println}}", "\n"),
    ("{{println \"a\" 1 2}}", "a 1 2\n"),
    ("{{print \"a\" \"b\"}} {{print 1 2}} {{print 1 \"a\" 2}} {{print nil}}", "ab 1 2 1a2 <nil>"),
    # Docker's functions
    ("{{json .L}}", '["a","b","c"]'),
    ("{{join .L \", \"}}", "a, b, c"),
    ("{{join .Cfg.Env \" \"}}", "A=1 B=2"),
    ("{{split \"a:b:c\" \":\"}}", "[a b c]"),
    ("{{index (split .S \"l\") 2}}", "o"),
    ("{{split \"abc\" \"\"}}", "[a b c]"),
    ("{{len (split \"\" \",\")}}", "1"),
    ("{{title \"hello wORLD\"}} {{title \"foo_bar baz-qux\"}} {{title \"été\"}}",
     "Hello WORLD Foo_bar Baz-Qux Été"),
    ("{{upper .S}} {{lower \"MiXeD\"}} {{upper \"straße\"}}", "HELLO mixed STRAßE"),
    ("[{{pad .S 2 1}}] [{{pad .E 2 2}}]", "[  hello ] []"),
    ("{{truncate .S 3}} {{truncate .S 5}} {{truncate .S 10}} {{truncate .S 0}}",
     "hel hello hello "),
    # html/js/urlquery builtins
    ("{{html \"<a href='x'>&\\\"\"}}", "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"),
    ("{{js \"it's <b>=\"}}", "it\\'s \\u003Cb\\u003E\\u003D"),
    ("{{urlquery \"a b&c/é\"}}", "a+b%26c%2F%C3%A9"),
    # define / template / block
    ("{{define \"T\"}}<{{.}}>{{end}}{{template \"T\" .S}}{{template \"T\" .A}}", "<hello><1>"),
    ("{{define \"T\"}}{{.}}{{end}}{{template \"T\"}}", "<no value>"),
    ("{{block \"B\" .M}}{{.z}}{{end}}", "26"),
]


_RENDER = [c for c in RENDER_CASES if c[1] is not None]


@pytest.mark.parametrize("fmt, expected", _RENDER, ids=[c[0][:50] for c in _RENDER])
def test_render(fmt, expected):
    assert render(fmt) == expected


def test_root_variable_prints_whole_map():
    assert render("{{$}}", {"b": [1], "a": "x"}) == "map[a:x b:[1]]"


def test_nil_data():
    assert compile("{{.}}|{{.X}}|{{json .}}").render(None) == "<no value>|<no value>|null"


def test_method_call_with_pipeline_argument():
    assert render('{{"b" | .Img.Label}}') == "2"


# Go's fmt %v for a float64: the shortest digits that round-trip, in exponent form when the
# decimal exponent is < -4 or >= 6 (encoding/json's cutoffs, 1e-6 and 1e21, differ).
@pytest.mark.parametrize(
    "value, expected",
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (100000.0, "100000"),
        (123456.0, "123456"),
        (123456.7, "123456.7"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (2.0**64, "1.8446744073709552e+19"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_print_float_like_go(value, expected):
    assert render("{{.}}", value) == expected


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ('{{printf "%s|%v|%d" "a" "b" 3}}', "a|b|3"),
        ('{{printf "%-10s|" "ab"}}', "ab        |"),
        ('{{printf "%10s|" "ab"}}', "        ab|"),
        ('{{printf "%.2s" "abc"}}', "ab"),
        ('{{printf "%.2s" "éèê"}}', "éè"),
        ('{{printf "%5.2f|%.0f|%f" 3.14159 2.5 1.0}}', " 3.14|2|1.000000"),
        ('{{printf "%08.3f|%+.1f|% .1f" -3.14159 2.0 2.0}}', "-003.142|+2.0| 2.0"),
        ('{{printf "%e|%E|%.2e" 123456.789 0.000123 1.0}}', "1.234568e+05|1.230000E-04|1.00e+00"),
        ('{{printf "%g|%g|%g|%.3g|%G" 1e-7 100000.0 1e6 2.0 1e20}}', "1e-07|100000|1e+06|2|1E+20"),
        ('{{printf "%d|%5d|%-5d|%05d|%+d|%x|%X|%o|%b" 42 42 42 -42 42 255 255 8 5}}',
         "42|   42|42   |-0042|+42|ff|FF|10|101"),
        ('{{printf "%#x|%#o|%O|%#08x|%.3d" 255 8 8 255 7}}', "0xff|010|0o10|0x000000ff|007"),
        ('{{printf "%c|%q|%U|%#U" 65 65 233 233}}', "A|'A'|U+00E9|U+00E9 'é'"),
        ('{{printf "%x|% x|%#x|%X" "hi" "hi" "hi" "hi"}}', "6869|68 69|0x6869|6869"),
        ('{{printf "%q|%+q|%#q|%#q" "a\\"b\\n" "é" "ab" "a`b"}}',
         '"a\\"b\\n"|"\\u00e9"|`ab`|"a`b"'),
        ('{{printf "%t|%v|%5t" true false true}}', "true|false| true"),
        ('{{printf "%v|%d|%s" .L .N .L}}', "[a b c]|[1 2 3 4 5]|[a b c]"),
        ('{{printf "%v" .M}}', "map[a:1 m:map[k:v] z:26]"),
        ('{{printf "%T|%T|%T|%T|%T|%T" 1 1.5 "s" true .L nil}}',
         "int|float64|string|bool|[]string|<nil>"),
        ('{{printf "%%|%d%%" 50}}', "%|50%"),
        ('{{printf "%*d|%-*d|" 5 1 3 2}}', "    1|2  |"),
        ('{{printf "%[2]s %[1]s" "a" "b"}}', "b a"),
        # Go's error forms inside the output
        ('{{printf "%d %s" 1}}', "1 %!s(MISSING)"),
        ('{{printf "%d" 1 2 "x"}}', "1%!(EXTRA int=2, string=x)"),
        ('{{printf "%s" 1}}', "%!s(int=1)"),
        ('{{printf "%d" "x"}}', "%!d(string=x)"),
        ('{{printf "%f" 1}}', "%!f(int=1)"),
        ('{{printf "%d" 1.5}}', "%!d(float64=1.5)"),
        ('{{printf "%s" nil}}', "%!s(<nil>)"),
        ('{{printf "%z" 1}}', "%!z(int=1)"),
        ('{{printf "%d" .L}}', "[%!d(string=a) %!d(string=b) %!d(string=c)]"),
        ('{{printf "abc%"}}', "abc%!(NOVERB)"),
        ('{{printf "%[3]d" 1}}', "%!d(BADINDEX)"),
        ('{{printf "%+v|%+d" 5 5}}', "5|+5"),
        ('{{printf "%v|%v" (1.5) 1e21}}', "1.5|1e+21"),
    ],
)
def test_printf(fmt, expected):
    assert render(fmt) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"b": 1, "a": "x"}, '{"a":"x","b":1}'),
        (Struct(b=1, a="x"), '{"b":1,"a":"x"}'),  # structs keep field order
        ([1, 2.5, None, True, False], "[1,2.5,null,true,false]"),
        ([], "[]"),
        ({}, "{}"),
        ("<a&b>", '"<a&b>"'),  # docker disables HTML escaping
        ("q\"b\\s/", '"q\\"b\\\\s/"'),
        ("\n\r\t\b\f\x01\x1f\x7f", '"\\n\\r\\t\\b\\f\\u0001\\u001f\x7f"'),
        ("\u2028\u2029é😀", '"\\u2028\\u2029é😀"'),
        (1.0, "1"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (123456789.0, "123456789"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (float("nan"), ""),  # encoding fails; docker's json returns ""
        ({1: "a", 10: "b", 2: "c"}, '{"1":"a","10":"b","2":"c"}'),  # keys sorted as strings
        (b"hi", '"aGk="'),
        (Image(),
         '{"Repository":"busybox","Tag":"latest","Size":4261237,"Labels":{"a":"1","b":"2"}}'),
        ({"Cfg": Struct(Z=1, A=[Struct(y=1, x=2)])}, '{"Cfg":{"Z":1,"A":[{"y":1,"x":2}]}}'),
    ],
)
def test_json(value, expected):
    assert render("{{json .}}", value) == expected


def test_json_of_missing_and_null():
    assert render("{{json .Missing}} {{json .Null}}") == "null null"


def test_json_of_datetime():
    from datetime import datetime, timedelta, timezone

    dt = datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=timezone.utc)
    assert render("{{json .}}", dt) == '"2024-01-02T03:04:05.12Z"'
    dt2 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    assert render("{{json .}}", dt2) == '"2024-01-02T03:04:05-05:30"'


def test_missingkey_error():
    tmpl = compile("{{.State.Health.Status}}")
    with pytest.raises(TemplateError) as exc:
        tmpl.render({"State": {}}, missingkey="error")
    assert str(exc.value) == (
        'template parsing error: template: :1:8: executing "" at <.State.Health.Status>: '
        'map has no entry for key "Health"'
    )
    assert tmpl.render({"State": {}}) == "<no value>"
    # "zero" gives the map's zero value: nil, which prints as <no value> but has no fields
    assert compile("{{.State.Health}}").render({"State": {}}, missingkey="zero") == "<no value>"
    with pytest.raises(TemplateError, match=r"nil pointer evaluating interface \{\}\.Status"):
        tmpl.render({"State": {}}, missingkey="zero")
    with pytest.raises(ValueError):
        tmpl.render({}, missingkey="bogus")


PARSE_ERRORS = [
    ("{{foo}}", 'function "foo" not defined'),
    ("{{.X | foo}}", 'function "foo" not defined'),
    ("{{.X", "unclosed action"),
    ("{{if .X}}a", "unexpected EOF"),
    ("{{if .X}}\n{{else}}\n", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{if .X}}{{else}}{{else}}{{end}}", "expected end; found {{else}}"),
    ("{{}}", "missing value for command"),
    ("{{range}}{{end}}", "missing value for range"),
    ("{{\"abc}}", "unterminated quoted string"),
    ("{{`abc}}", "unterminated raw quoted string"),
    ("{{'a}}", "unterminated character constant"),
    ("{{'ab'}}", "malformed character constant: 'ab'"),
    ("{{\"\\q\"}}", "invalid syntax"),
    ("{{$x}}", 'undefined variable "$x"'),
    ("{{if true}}{{$x := 1}}{{end}}{{$x}}", 'undefined variable "$x"'),
    ("{{.X #}}", 'unexpected "#" in operand'),
    ("{{.X }", 'unexpected "}" in operand'),
    ("{{.X}", "bad character U+007D '}'"),  # the lexer sees a field followed by '}'
    ("{{.Config.Labels.com-foo}}", "bad character U+002D '-'"),
    ("{{1a}}", 'bad number syntax: "1a"'),
    ("{{(.X}}", "unclosed left paren"),
    ("{{.X)}}", "unexpected right paren"),
    ("{{.X | 3}}", "non executable command in pipeline stage 2"),
    ("{{true.X}}", 'unexpected . after term "true"'),
    ("{{3.X}}", 'bad number syntax: "3.X"'),
    ("{{break}}", "{{break}} outside {{range}}"),
    ("{{range .L}}{{continue 1}}{{end}}", 'unexpected "1" in {{continue}}'),
    ("{{/* x */ }}", "comment ends before closing delimiter"),
    ("{{/* x", "unclosed comment"),
    ("{{ .X := 1}}", 'unexpected ":=" in operand'),
    ("{{template .X}}", 'unexpected ".X" in template clause'),
    ("{{if .X}}{{else if}}{{end}}", "missing value for if"),
    ("{{range $i, $v, $w := .L}}{{end}}", "too many declarations in range"),
    ("{{$a, $b := 1}}", "too many declarations in command"),
    ("{{define \"a\"}}x{{end}}{{define \"a\"}}y{{end}}",
     'template: multiple definition of template "a"'),
    ("{{1i}}", "complex constants are not supported: 1i"),
    ("{{ \x01 }}", "unrecognized character in action: U+0001"),
    ("a\nb\n{{foo}}", None),  # line number, checked below
]


@pytest.mark.parametrize(
    "fmt, message", [c for c in PARSE_ERRORS if c[1]], ids=[c[0] for c in PARSE_ERRORS if c[1]]
)
def test_parse_errors(fmt, message):
    with pytest.raises(TemplateError) as exc:
        compile(fmt)
    line = fmt.count("\n") + 1 if message == "unexpected EOF" else 1
    assert str(exc.value) == f"template parsing error: template: :{line}: {message}"


def test_parse_error_line_numbers():
    message = r"^template parsing error: template: :3: function \"foo\" not defined$"
    with pytest.raises(TemplateError, match=message):
        compile("a\nb\n{{foo}}")
    with pytest.raises(TemplateError, match=r"template: :2: unclosed action started at :1$"):
        compile("{{.X\n")


def test_template_errors_are_invalid_arguments():
    with pytest.raises(InvalidArgument):
        compile("{{")


EXEC_ERRORS = [
    ("{{.S.X}}", "1:4", "<.S.X>", "can't evaluate field X in type string"),
    ("{{.Null.X}}", "1:7", "<.Null.X>", "nil pointer evaluating interface {}.X"),
    ("{{.Cfg.Nope}}", "1:6", "<.Cfg.Nope>", "can't evaluate field Nope in type Struct"),
    ("{{.Img.Nope}}", "1:6", "<.Img.Nope>", "can't evaluate field Nope in type Image"),
    ("{{.Img.Fail}}", "1:6", "<.Img.Fail>", "error calling Fail: boom"),
    ("{{.A 1}}", "1:2", "<.A>", "A is not a method but has arguments"),
    ("{{.Cfg.Hostname 1}}", "1:6", "<.Cfg.Hostname>",
     "Hostname has arguments but cannot be invoked as function"),
    ("{{nil}}", "1:2", "<nil>", "nil is not a command"),
    ("{{.A | .S}}", "1:7", "<.S>", "S is not a method but has arguments"),
    ("{{printf}}", "1:2", "<printf>", "wrong number of args for printf: want at least 1 got 0"),
    ("{{3 | printf}}", "1:6", "<printf>", "wrong type for value; expected string; got int"),
    ("{{truncate .S}}", "1:2", "<truncate>", "wrong number of args for truncate: want 2 got 1"),
    ("{{index .L 5}}", "1:2", "<index .L 5>", "error calling index: index out of range: 5"),
    ("{{index .L 3}}", "1:2", "<index .L 3>", "error calling index: index out of range: 3"),
    ("{{index .L \"x\"}}", "1:2", "<index .L \"x\">",
     "error calling index: cannot index slice/array with type string"),
    ("{{index .A 1}}", "1:2", "<index .A 1>", "error calling index: can't index item of type int"),
    ("{{index .Missing 1}}", "1:2", "<index .Missing 1>",
     "error calling index: index of untyped nil"),
    ("{{slice .L 2 1}}", "1:2", "<slice .L 2 1>",
     "error calling slice: invalid slice index: 2 > 1"),
    ("{{len .A}}", "1:2", "<len .A>", "error calling len: len of type int"),
    ("{{lt 1 2.0}}", "1:2", "<lt 1 2.0>", "error calling lt: incompatible types for comparison"),
    ("{{lt .T .T}}", "1:2", "<lt .T .T>", "error calling lt: invalid type for comparison"),
    ("{{eq .A \"1\"}}", "1:2", "<eq .A \"1\">",
     "error calling eq: incompatible types for comparison"),
    ("{{join .S \",\"}}", "1:7", "<.S>", "wrong type for value; expected []string; got string"),
    ("{{join .N \",\"}}", "1:7", "<.N>",
     "wrong type for value; expected []string; got []interface {}"),
    ("{{upper .A}}", "1:8", "<.A>", "wrong type for value; expected string; got int"),
    ("{{upper 3}}", "1:8", "<3>", "expected string; found 3"),
    ("{{upper .Missing}}", "1:8", "<.Missing>", "invalid value; expected string"),
    ("{{truncate .S \"x\"}}", "1:14", "<\"x\">", "expected integer; found \"x\""),
    ("{{pad .S -1 0}}", "1:2", "<pad .S -1 0>",
     "error calling pad: strings: negative Repeat count"),
    ("{{range .S}}{{end}}", "1:8", "<.S>", "range can't iterate over hello"),
    ("{{template \"nope\"}}", "1:11", "<{{template \"nope\"}}>", 'template "nope" not defined'),
    ("{{9223372036854775808}}", "1:2", "<9223372036854775808>",
     "9223372036854775808 overflows int"),
    ("x\n  {{.S.X}}", "2:6", "<.S.X>", "can't evaluate field X in type string"),
]


@pytest.mark.parametrize("fmt, loc, ctx, message", EXEC_ERRORS, ids=[c[0] for c in EXEC_ERRORS])
def test_exec_errors(fmt, loc, ctx, message):
    with pytest.raises(TemplateError) as exc:
        render(fmt)
    assert str(exc.value) == (
        f'template parsing error: template: :{loc}: executing "" at {ctx}: {message}'
    )
    assert "\n" not in str(exc.value)


def test_exec_error_inside_named_template():
    with pytest.raises(TemplateError) as exc:
        render('{{define "T"}}{{.X}}{{end}}{{template "T" .S}}')
    assert 'executing "T" at <.X>: can\'t evaluate field X in type string' in str(exc.value)


def test_recursive_template_is_stopped():
    with pytest.raises(TemplateError, match="exceeded maximum template depth"):
        render('{{define "T"}}{{template "T" .}}{{end}}{{template "T" .}}')


def test_compile_is_cached_and_raw():
    assert compile("{{.A}}") is compile("{{.A}}")
    # compile() is Go's templates.Parse: no docker formatter preprocessing
    assert compile("  {{.A}}\\t{{.B}}  ").render(DATA) == "  1\\t2  "


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("table", True),
        ("table {{.ID}}", True),
        ("tablefoo", True),  # docker only checks the prefix
        (" table {{.ID}}", False),
        ("{{.ID}}", False),
        ("json", False),
        ("", False),
    ],
)
def test_is_table(fmt, expected):
    assert is_table(fmt) is expected


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("table {{.ID}}\\t{{.Name}}", "{{.ID}}\t{{.Name}}"),
        ("{{.ID}}\\n{{.Name}}", "{{.ID}}\n{{.Name}}"),
        ("  {{.ID}}  ", "{{.ID}}"),
        ("\t{{.ID}}\t", "\t{{.ID}}\t"),  # only spaces are trimmed
        ("json", "{{json .}}"),
        ("table", ""),
        ("table\\t{{.ID}}", "\t{{.ID}}"),
        ("a\\\\tb", "a\\\tb"),
    ],
)
def test_preprocess(fmt, expected):
    assert preprocess(fmt) == expected


ROWS = [
    {"ID": "a416a98b71e2", "Repository": "busybox", "Tag": "latest", "CreatedSince": "2 months ago",
     "Size": "4.26MB"},
    {"ID": "9c7a54a9a43c", "Repository": "registry.example.com/team/app", "Tag": "1.0",
     "CreatedSince": "3 hours ago", "Size": "123MB"},
]
IMAGE_HEADERS = {"ID": "IMAGE ID", "CreatedSince": "CREATED"}


def test_render_lines():
    assert render_lines("{{.Repository}}:{{.Tag}}", ROWS) == (
        "busybox:latest\nregistry.example.com/team/app:1.0\n"
    )
    assert render_lines("{{.ID}}\\t{{.Tag}}", ROWS[:1]) == "a416a98b71e2\tlatest\n"
    assert render_lines("json", [{"b": 1, "a": 2}]) == '{"a":2,"b":1}\n'
    assert render_lines("{{.ID}}", []) == ""


def test_docker_images_default_table():
    fmt = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}"
    out = render_lines(fmt, ROWS, IMAGE_HEADERS)
    assert out == (
        "REPOSITORY                      TAG       IMAGE ID       CREATED        SIZE\n"
        "busybox                         latest    a416a98b71e2   2 months ago   4.26MB\n"
        "registry.example.com/team/app   1.0       9c7a54a9a43c   3 hours ago    123MB\n"
    )


def test_docker_ps_header_without_rows():
    fmt = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"
           "\t{{.Names}}")
    out = format_table(fmt, [], {"ID": "CONTAINER ID", "RunningFor": "CREATED"})
    assert out == "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"


def test_table_header_from_field_names():
    assert format_table("table {{.Repository}}\t{{.Tag}}", []) == "REPOSITORY   TAG\n"
    assert format_table("table {{.Repository}}:{{.Tag}}", ROWS[:1]) == (
        "REPOSITORY:TAG\nbusybox:latest\n"
    )


def test_table_header_functions_keep_titles():
    rows = [{"Names": "web", "ID": "abcdef", "Labels": {"a": "1"}}]
    out = format_table("table {{upper .Names}}\t{{truncate .ID 3}}\t{{json .Labels}}", rows)
    assert out == "NAMES     ID        LABELS\nWEB       abc       {\"a\":\"1\"}\n"
    # pad is not overridden: the header is padded like the column
    assert format_table("table {{pad .Names 1 1}}|", rows) == " NAMES |\n web |\n"


def test_table_header_error_keeps_partial_header():
    # As in docker, a header that fails to render keeps what it printed before failing.
    rows = [{"Labels": {"a": "x"}, "Name": "n"}]
    out = format_table('table {{.Name}}\t{{index .Labels "a"}}', rows)
    assert out == "NAME      \nn         x\n"


def test_table_row_error_is_raised():
    with pytest.raises(TemplateError, match="can't evaluate field X in type string"):
        format_table("table {{.Name.X}}", [{"Name": "n"}])


def test_table_parse_error():
    message = '^template parsing error: template: :1: function "nope" not defined$'
    with pytest.raises(TemplateError, match=message):
        format_table("table {{nope .X}}", [])


@pytest.mark.parametrize(
    "name, expected",
    [
        ("ID", "ID"),
        ("Repository", "REPOSITORY"),
        ("CreatedAt", "CREATED AT"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("RunningFor", "RUNNING FOR"),
        ("HTTPPort", "HTTP PORT"),
        ("IPv6", "I PV 6"),
        ("lower", "LOWER"),
    ],
)
def test_default_header(name, expected):
    assert default_header(name) == expected


# tabwriter: Go's algorithm; defaults are docker's (minwidth 10, tabwidth 1, padding 3, ' ')
@pytest.mark.parametrize(
    "text, kwargs, expected",
    [
        ("", {}, ""),
        ("no tabs\n", {}, "no tabs\n"),
        ("a\tb\tc\naa\tbbb\tc\n", {}, "a         b         c\naa        bbb       c\n"),
        ("a\tb", {}, "a         b"),  # no trailing newline: none added
        ("REPOSITORY\tTAG\n", {}, "REPOSITORY   TAG\n"),
        # the example from Go's documentation: b and c are in distinct columns
        ("aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n", {"minwidth": 0, "padding": 1},
         "aaaa bbb d\naa   b   dd\na    \naa   cccc eee\n"),
        # a line without tabs ends every column block
        ("a\tb\nno tabs\nlongerrrrrr\tc\n", {"minwidth": 0, "padding": 1},
         "a b\nno tabs\nlongerrrrrr c\n"),
        # empty cells are padded too
        ("\tx\nab\ty\n", {"minwidth": 0, "padding": 1}, "   x\nab y\n"),
        ("a\t\tc\n", {"minwidth": 0, "padding": 1}, "a  c\n"),
        # \v terminates a cell like \t; \f ends the block and prints as a newline
        ("a\vb\n", {"minwidth": 0, "padding": 1}, "a b\n"),
        ("a\tb\fccc\td\n", {"minwidth": 0, "padding": 1}, "a b\nccc d\n"),
        # widths are display widths (docker's fork uses go-runewidth)
        ("日本\tx\nab\ty\n", {"minwidth": 0, "padding": 1}, "日本 x\nab   y\n"),
        ("e\u0301\tx\nab\ty\n", {"minwidth": 0, "padding": 1}, "e\u0301  x\nab y\n"),
        # ESC has no width, the rest of a colour code does (as in docker)
        ("\x1b[1mb\x1b[0m\tx\nabcdefgh\ty\n", {"minwidth": 0, "padding": 1},
         "\x1b[1mb\x1b[0m  x\nabcdefgh y\n"),
        # tab padding
        ("a\tb\naaaaaa\tc\n", {"minwidth": 0, "tabwidth": 4, "padding": 1, "padchar": "\t"},
         "a\t\tb\naaaaaa\tc\n"),
        ("a\tb\n", {"minwidth": 0, "tabwidth": 0, "padding": 1, "padchar": "\t"}, "ab\n"),
    ],
)
def test_tabwriter(text, kwargs, expected):
    assert tabwriter(text, **kwargs) == expected


def test_tabwriter_east_asian_ambiguous_width():
    # U+00B1 (±) is ambiguous: 1 column normally, 2 in CJK locales.
    text = "\u00b1\tx\nab\ty\n"
    assert tabwriter(text, minwidth=0, padding=1) == "\u00b1  x\nab y\n"
    assert tabwriter(text, minwidth=0, padding=1, east_asian=True) == "\u00b1 x\nab y\n"


def test_tabwriter_rejects_negative_settings():
    with pytest.raises(ValueError):
        tabwriter("a\tb\n", padding=-1)
