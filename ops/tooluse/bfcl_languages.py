"""Java and JavaScript tool calls as BFCL scores them: call text in, arguments as source text, values typed.

BFCL's java/javascript categories ask for one call such as `Cls.method(a="x", n=5, xs=new int[]{1, 2})`.
Its decoder keeps every argument as source text (surrounding quotes dropped from a top-level string);
its checker then converts the text by the schema type: integers/longs/floats/doubles/booleans by
regular expression (a literal that does not fit stays a string, which the type check then refuses),
`new T[]{...}`, `new ArrayList<>(Arrays.asList(...))`, `new HashMap<>() {{ put(k, v); }}`, JavaScript
`[...]` and `{k: v}`. This module re-implements that conversion (not copied) with a bracket-aware
splitter instead of tree-sitter; the differential test measures it against BFCL's own code.
"""

from __future__ import annotations

import re
from typing import Any

JAVA_TYPES: dict[str, type] = {
    "byte": int,
    "short": int,
    "integer": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "char": str,
    "Array": list,
    "ArrayList": list,
    "HashMap": dict,
    "String": str,
    "any": str,
}
JS_TYPES: dict[str, type] = {
    "String": str,
    "integer": int,
    "float": float,
    "Bigint": int,
    "Boolean": bool,
    "dict": dict,
    "array": list,
    "any": str,
}
_INT = re.compile(r"^-?\d+$")
_JAVA_FLOAT = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$")
_DOUBLE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_LONG = re.compile(r"^-?\d+[lL]$")
_JS_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_JAVA_ARRAY = re.compile(r"new\s+\w+\[\]\s*\{(.*?)\}", re.S)
_AS_LIST = re.compile(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)", re.S)
_QUOTES = {"java": ('"',), "javascript": ('"', "'")}


class LanguageCallError(ValueError):
    """Raised when Java/JavaScript call text cannot be split into a name and keyword arguments."""


def split_top_level(text: str, sep: str = ",", angle: bool = False) -> list[str]:
    """Split on `sep` outside brackets, braces, parentheses and quotes (and <...> generics when `angle`)."""
    opening, closing = ("([{<", ")]}>") if angle else ("([{", ")]}")
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in opening:
            depth += 1
        elif ch in closing:
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise LanguageCallError("unbalanced brackets or quotes")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_language_calls(text: str, language: str) -> list[tuple[str, dict[str, str]]]:
    """Read `[Cls.method(a=..., b=...), ...]` into (name, {param: source text}) pairs."""
    body = text.strip("`\n ").removeprefix("[").removesuffix("]").strip()
    return [_language_call(call, language) for call in split_top_level(body, angle=language == "java")]


def _language_call(text: str, language: str) -> tuple[str, dict[str, str]]:
    match = re.match(r"^([A-Za-z_$][\w$.]*)\s*\((.*)\)\s*;?$", text, re.S)
    if not match:
        raise LanguageCallError(f"not a {language} call: {text[:60]!r}")
    arguments: dict[str, str] = {}
    for part in split_top_level(match.group(2), angle=language == "java"):
        name, eq, value = part.partition("=")
        if not eq or not re.fullmatch(r"\s*[A-Za-z_$][\w$]*\s*", name):
            raise LanguageCallError(f"not a keyword argument: {part[:60]!r}")
        arguments[name.strip()] = _unquote(value.strip(), language)
    return match.group(1), arguments


def _unquote(value: str, language: str) -> str:
    for q in _QUOTES[language]:
        if len(value) >= 2 and value.startswith(q) and value.endswith(q):
            return value[1:-1]
    return value


def convert_language_value(value: Any, schema: dict[str, Any], language: str) -> tuple[type, type | None, Any]:
    """Expected Python type, nested item type and the converted value, as BFCL's converters give them.

    A non-string value is returned unconverted (BFCL then fails its type check).
    """
    kind = schema["type"]
    table = JAVA_TYPES if language == "java" else JS_TYPES
    want = table[kind]
    nested_kind = (schema.get("items") or {}).get("type") if want is list else None
    nested = table[nested_kind] if nested_kind else None
    if not isinstance(value, str):
        return want, nested, value
    convert = _java_value if language == "java" else _js_value
    return want, nested, convert(value, kind, nested_kind)


def _java_value(value: str, kind: str, nested: str | None = None) -> Any:
    if kind in ("byte", "short", "integer"):
        return int(value) if _INT.match(value) else value
    if kind == "float":
        return float(value[:-1]) if _JAVA_FLOAT.match(value) else value
    if kind == "double":
        return float(value) if _DOUBLE.match(value) else value
    if kind == "long":
        return int(value[:-1]) if _LONG.match(value) else value
    if kind == "boolean":
        return value == "true" if value in ("true", "false") else value
    if kind == "Array":
        found = _JAVA_ARRAY.search(value)
        items = [x.strip() for x in found.group(1).split(",") if x.strip()] if found else None
        return value if items is None else [_java_item(x, nested) for x in items]
    if kind == "ArrayList":
        found = _AS_LIST.search(value)
        if found:
            return [_java_item(x.strip(), nested, unquote=True) for x in found.group(1).split(",")]
        return [] if re.search(r"new\s+ArrayList<\w*>\(\)", value) else value
    if kind == "HashMap":  # BFCL's decoder drops an anonymous-class body, so `{{ put(...); }}` never reaches it
        return {} if re.search(r"new\s+HashMap<.*?>\s*\(\)", value) else value
    return value


def _java_item(item: str, nested: str | None, unquote: bool = False) -> Any:
    if unquote and nested in ("char", "String"):
        return item[1:-1]
    return _java_value(item, nested) if nested else _java_untyped(item)


def _java_untyped(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    if value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    if _LONG.match(value):
        return int(value[:-1])
    if _JAVA_FLOAT.match(value):
        return float(value[:-1])
    for number in (int, float):
        try:
            return number(value)
        except ValueError:
            continue
    return value


def _js_value(value: str, kind: str, nested: str | None = None) -> Any:
    if kind == "String":
        return _unquote(value, "javascript")
    if kind == "integer":
        return int(value) if _INT.match(value) else value
    if kind == "float":
        return float(value) if _JS_FLOAT.match(value) else value
    if kind == "Bigint":
        return int(value[:-1]) if re.match(r"^-?\d+n$", value) else value
    if kind == "Boolean":
        return value == "true" if value in ("true", "false") else value
    if kind == "array":
        return _js_array(value.strip(), nested)
    if kind == "dict":
        return _js_dict(value.strip())
    return value


def _js_array(code: str, nested: str | None) -> Any:
    """A JS array literal, split on commas (BFCL's regex reading; a non-array stays as stripped text)."""
    found = re.match(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)", code, re.S)
    if not found:
        return code
    inner = (found.group(1) if found.group(1) is not None else found.group(2)).strip()
    items = [e.strip() for e in inner.split(",")] if inner else []
    if nested:
        return [_js_value(e, nested) for e in items]
    return [_js_untyped(e) for e in items]


def _js_dict(code: str) -> Any:
    """A JS object literal read as BFCL's regex does: up to the first "}", values with quotes stripped."""
    if code == "{}":
        return {}
    found = re.match(r"\{(.*?)\}", code)
    if not found:
        return code
    result: dict[str, Any] = {}
    for key, value in re.findall(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)", found.group(1)):
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            result[key.strip().strip("'\"")] = _js_array(value, None)
        elif value.startswith("{") and value.endswith("}"):
            result[key.strip().strip("'\"")] = _js_dict(value)
        else:
            result[key.strip().strip("'\"")] = _js_untyped(value.strip("'\""))
    return result


def _js_untyped(value: str) -> Any:
    value = value.strip()
    if value in ("true", "false"):
        return value == "true"
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    for number in (int, float):
        try:
            return number(value)
        except ValueError:
            continue
    return value
