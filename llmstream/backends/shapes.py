"""The documented shape of a server's stream parts, checked field by field.

A server (or a proxy in front of it) can send valid JSON of the wrong shape: a list where an
object goes, a number where text goes, `"done": "soon"`. Each accessor here returns the
field's value when it has the documented type, a neutral value when it is absent or null
(the protocols leave most fields out when they have nothing to say), and otherwise raises
`Unexpected` with a sentence that names the field and what it held, never its value (it
could be huge, or carry something private).
"""

from __future__ import annotations

from typing import Any

from llmstream.errors import Unexpected


def kind(value: object) -> str:
    """A JSON value's type as a person says it.

    >>> kind([1]), kind("x"), kind(True), kind(2.5), kind({}), kind(None)
    ('a list', 'text', 'true or false', 'a number', 'an object', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"


def unexpected(field: str, value: object, wanted: str) -> Unexpected:
    return Unexpected(
        f"The server sent something unexpected: `{field}` was {kind(value)} where {wanted} belongs.",
        hint="The answer so far is kept. Try again; if it happens again, check that the server speaks the API it is set up as.",
    )


def text(part: dict[str, Any], key: str, where: str) -> str:
    """`part[key]` when it is text, "" when absent or null."""
    value = part.get(key)
    if value is None or isinstance(value, str):
        return value or ""
    raise unexpected(f"{where}{key}", value, "text")


def obj(part: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    """`part[key]` when it is an object, {} when absent or null."""
    value = part.get(key)
    if value is None or isinstance(value, dict):
        return value or {}
    raise unexpected(f"{where}{key}", value, "an object")


def items(part: dict[str, Any], key: str, where: str = "") -> list[Any]:
    """`part[key]` when it is a list, [] when absent or null."""
    value = part.get(key)
    if value is None or isinstance(value, list):
        return value or []
    raise unexpected(f"{where}{key}", value, "a list")


def flag(part: dict[str, Any], key: str, where: str = "") -> bool:
    """`part[key]` when it is true or false, False when absent or null."""
    value = part.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise unexpected(f"{where}{key}", value, "true or false")
