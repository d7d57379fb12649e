"""Writing HCL2 values so that Packer reads back exactly the string we were given.

Two layers read a string in a Packer template:
1. HCL2 itself: a quoted string is a *template*, where `${...}` interpolates and `%{...}` is a
   directive. We write JSON-like quoted strings and double those introducers (`$${`, `%%{`), which
   HCL turns back into the literal text. Escapes are the ones HCL knows (`\\n`, `\\t`, `\\"`, `\\\\`,
   `\\uNNNN`); JSON's `\\b` and `\\f` are not among them, so control characters are written as `\\uNNNN`.
2. Packer's Go text/template pass over provisioner settings (`{{ .Path }}`, `{{ build ... }}`).
   Packer renders those fields again and again (Prepare, then Provision, for every field), so no
   escape survives: a literal `{{` cannot be passed through a templated field at all. Callers check
   `go_template_safe()` and route such text elsewhere (a script file, which Packer uploads verbatim)
   or refuse it with a clear message.
"""

from __future__ import annotations

from collections.abc import Iterable

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str, *, template: bool = True) -> str:
    """An HCL2 quoted-string literal whose value is exactly `value`.

    `template=False` leaves `${`/`%{` alone: for text shown in comments, where HCL reads nothing.
    """
    out = ['"']
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    text = "".join(out)
    if not template:
        return text
    # Doubling works on the escaped text too: no escape sequence contains '$' or '%'.
    return text.replace("${", "$${").replace("%{", "%%{")


def go_template_safe(value: str) -> bool:
    """Whether Packer's Go-template pass leaves `value` unchanged (it has no `{{` action)."""
    return "{{" not in value


def string_list(values: Iterable[str], indent: str) -> str:
    """A multi-line HCL tuple of quoted strings, one per line, indented for a block attribute."""
    items = [f"{indent}  {quote(v)}," for v in values]
    if not items:
        return "[]"
    return "[\n" + "\n".join(items) + f"\n{indent}]"


def value(v: object, indent: str = "") -> str:
    """An HCL literal for a str, bool, int or a list of those."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, list | tuple):
        if all(isinstance(x, str) for x in v):
            return string_list([str(x) for x in v], indent)
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, Expression):
        return v.text
    raise TypeError(f"no HCL literal for {type(v).__name__}")


class Expression:
    """Raw HCL expression text (a variable reference such as `var.host`), written as is."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def block(header: str, attributes: Iterable[tuple[str, object]], indent: str = "") -> str:
    """`header {` + `name = value` lines + `}`; single-line values have their `=` aligned."""
    rendered = [(name, value(v, indent + "  ")) for name, v in attributes]
    width = max((len(name) for name, text in rendered if "\n" not in text), default=0)
    lines = [f"{indent}{header} {{"]
    for name, text in rendered:
        pad = name if "\n" in text else name.ljust(width)
        lines.append(f"{indent}  {pad} = {text}")
    lines.append(f"{indent}}}")
    return "\n".join(lines)
