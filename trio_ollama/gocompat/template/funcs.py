"""The functions templates call: Go's built-ins (`eq`, `index`, `printf`...) and Ollama's."""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final

from trio_ollama.gocompat.template.fmt import go_sprint, go_sprintf, go_sprintln
from trio_ollama.gocompat.template.nodes import NO_VALUE
from trio_ollama.gocompat.template.values import fmt_v, is_seq, is_true, json_func, type_name


class FuncError(Exception):
    pass


# The kinds Go's comparisons tell apart (`basicKind` in text/template's funcs.go), by the name
# `%T` gives the value's type; every other type is "other".
_KINDS: Final = {
    "<nil>": "invalid",
    "bool": "bool",
    "int": "int",
    "float64": "float",
    "string": "string",
}


def _kind(v: Any) -> str:
    return _KINDS.get(type_name(v), "other")


def _eq(arg1: Any, *rest: Any) -> bool:
    if not rest:
        raise FuncError("missing argument for comparison")
    k1 = _kind(arg1)
    for arg in rest:
        k2 = _kind(arg)
        if k1 != k2:
            if k1 != "invalid" and k2 != "invalid":
                raise FuncError("incompatible types for comparison")
            continue
        if k1 == "invalid":
            return True
        if k1 == "other" and (
            isinstance(arg1, Mapping | bytes | bytearray)
            or is_seq(arg1)
            or isinstance(arg, Mapping | bytes | bytearray)
            or is_seq(arg)
        ):
            raise FuncError(f"non-comparable type {fmt_v(arg1)}: {type_name(arg1)}")
        if arg1 == arg:
            return True
    return False


def _ne(arg1: Any, arg2: Any) -> bool:
    return not _eq(arg1, arg2)


def _ordered(a: Any, b: Any) -> tuple[Any, Any]:
    ka, kb = _kind(a), _kind(b)
    if ka in ("invalid", "bool", "other") or kb in ("invalid", "bool", "other"):
        raise FuncError("invalid type for comparison")
    if ka != kb:
        raise FuncError("incompatible types for comparison")
    return a, b


def _lt(a: Any, b: Any) -> bool:
    x, y = _ordered(a, b)
    return bool(x < y)


def _le(a: Any, b: Any) -> bool:
    x, y = _ordered(a, b)
    return bool(x <= y)


def _gt(a: Any, b: Any) -> bool:
    x, y = _ordered(a, b)
    return bool(x > y)


def _ge(a: Any, b: Any) -> bool:
    x, y = _ordered(a, b)
    return bool(x >= y)


def _not(v: Any) -> bool:
    return not is_true(v)


def _len(v: Any) -> int:
    if v is None or v is NO_VALUE:
        raise FuncError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, bytes | bytearray | Mapping) or is_seq(v):
        return len(v)
    raise FuncError(f"len of type {type_name(v)}")


def _index_arg(i: Any, cap: int) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        raise FuncError(f"cannot index slice/array with type {type_name(i)}")
    if i < 0 or i > cap:
        raise FuncError(f"index out of range: {i}")
    return i


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise FuncError("index of untyped nil")
    for idx in indexes:
        if item is None or item is NO_VALUE:
            raise FuncError("index of untyped nil")
        if isinstance(item, Mapping):
            item = item.get(idx)
        elif isinstance(item, str):
            data = item.encode()
            item = data[_index_arg(idx, len(data) - 1)] if data else _index_arg(idx, -1)
        elif isinstance(item, bytes | bytearray) or is_seq(item):
            if not item:
                raise FuncError(f"index out of range: {idx}")
            item = item[_index_arg(idx, len(item) - 1)]
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        data: Any = item.encode()
    elif isinstance(item, bytes | bytearray) or is_seq(item):
        data = item
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    cap = len(data)
    idx = [0, len(data), cap]
    for n, i in enumerate(indexes):
        idx[n] = _index_arg(i, cap)
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    result = data[idx[0] : idx[1]]
    if isinstance(item, str):
        return bytes(result).decode("utf-8", "replace")
    if isinstance(item, list | tuple | bytes | bytearray):
        return result
    return list(result)


def _eval_args_text(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return go_sprint(*args)


def _html(*args: Any) -> str:
    s = _eval_args_text(args)
    table = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}
    return "".join(table.get(c, c) for c in s)


def _js(*args: Any) -> str:
    s = _eval_args_text(args)
    out: list[str] = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c in "'\"":
            out.append("\\" + c)
        elif c in "<>&=`" or ord(c) < 0x20 or not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args_text(args), safe="")


def _printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise FuncError(f"wrong type for value; expected string; got {type_name(fmt)}")
    return go_sprintf(fmt, *[None if a is NO_VALUE else a for a in args])


def _call(*args: Any) -> Any:
    raise FuncError("call is not supported")


# `and` and `or` are evaluated lazily by the executor; these entries only make the names known.
def _and(*args: Any) -> Any:
    for a in args:
        if not is_true(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if is_true(a):
            return a
    return args[-1]


BUILTIN_FUNCS: Final[Mapping[str, Callable[..., Any]]] = {
    "and": _and,
    "or": _or,
    "not": _not,
    "eq": _eq,
    "ne": _ne,
    "lt": _lt,
    "le": _le,
    "gt": _gt,
    "ge": _ge,
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": go_sprint,
    "printf": _printf,
    "println": go_sprintln,
    "html": _html,
    "js": _js,
    "urlquery": _urlquery,
    "call": _call,
}


def _current_date(*_args: Any) -> str:
    return datetime.date.today().isoformat()


def _yesterday_date(*_args: Any) -> str:
    return (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


def _to_typescript_type(v: Any) -> str:
    method = getattr(v, "to_typescript_type", None)
    if callable(method):
        return str(method())
    return "any"


OLLAMA_FUNCS: Final[Mapping[str, Callable[..., Any]]] = {
    **BUILTIN_FUNCS,
    "json": json_func,
    "currentDate": _current_date,
    "yesterdayDate": _yesterday_date,
    "toTypeScriptType": _to_typescript_type,
}
