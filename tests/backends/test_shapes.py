"""Each shape checker passes the documented type through, reads absent or null as neutral, and names the field
(never its value) when a server sends the wrong type."""

from __future__ import annotations

import pytest

from llmstream.backends.shapes import flag, items, kind, obj, text, unexpected
from llmstream.errors import StreamBroken, Unexpected

HINT = (
    "The answer so far is kept. Try again; if it happens again, check that the server speaks the API it is set up as."
)


def sentence(field: str, held: str, wanted: str) -> str:
    return f"The server sent something unexpected: `{field}` was {held} where {wanted} belongs."


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (None, "null"),
        (True, "true or false"),
        (False, "true or false"),
        (0, "a number"),
        (2.5, "a number"),
        ("", "text"),
        ("x", "text"),
        ([], "a list"),
        ([1], "a list"),
        ({}, "an object"),
        ({"a": 1}, "an object"),
    ],
)
def test_kind_names_each_json_type_as_a_person_says_it(value, said):
    """A bool is an int in Python; a person reading the error still calls it true or false, not a number."""
    assert kind(value) == said


def test_unexpected_builds_the_sentence_and_hint():
    error = unexpected("message.content", [1, 2], "text")
    assert isinstance(error, Unexpected) and isinstance(error, StreamBroken)
    assert error.message == str(error) == sentence("message.content", "a list", "text")
    assert error.hint == HINT


def test_text_accepts_text_and_reads_absent_or_null_as_empty():
    assert text({"response": "Hi"}, "response", "") == "Hi"
    assert text({"response": ""}, "response", "") == ""
    assert text({"response": None}, "response", "") == ""
    assert text({}, "response", "") == ""
    assert text({"other": "x"}, "response", "") == ""


def test_obj_accepts_an_object_and_reads_absent_or_null_as_empty():
    inner = {"content": "Hi"}
    assert obj({"message": inner}, "message") is inner
    assert obj({"message": {}}, "message") == {}
    assert obj({"message": None}, "message") == {}
    assert obj({}, "message") == {}
    assert obj({"other": {"a": 1}}, "message") == {}


def test_items_accepts_a_list_and_reads_absent_or_null_as_empty():
    choices = [{"delta": {}}]
    assert items({"choices": choices}, "choices") is choices
    assert items({"choices": []}, "choices") == []
    assert items({"choices": None}, "choices") == []
    assert items({}, "choices") == []
    assert items({"other": [1]}, "choices") == []


def test_flag_accepts_true_or_false_and_reads_absent_or_null_as_false():
    assert flag({"done": True}, "done") is True
    assert flag({"done": False}, "done") is False
    assert flag({"done": None}, "done") is False
    assert flag({}, "done") is False
    assert flag({"other": True}, "done") is False


@pytest.mark.parametrize(
    ("check", "wanted", "wrong"),
    [
        (text, "text", [(1, "a number"), (True, "true or false"), ([], "a list"), ({}, "an object")]),
        (obj, "an object", [(1, "a number"), (False, "true or false"), ("x", "text"), ([{}], "a list")]),
        (items, "a list", [(0, "a number"), (True, "true or false"), ("", "text"), ({"a": []}, "an object")]),
        (
            flag,
            "true or false",
            [(1, "a number"), (0, "a number"), ("true", "text"), ([], "a list"), ({}, "an object")],
        ),
    ],
)
def test_a_wrong_type_names_the_field_and_what_it_held(check, wanted, wrong):
    """The field's path is `where` + `key`; the value itself never appears (it could be huge or private)."""
    for value, held in wrong:
        with pytest.raises(Unexpected) as caught:
            check({"field": value}, "field", "message.")
        assert caught.value.message == sentence("message.field", held, wanted)
        assert caught.value.hint == HINT


@pytest.mark.parametrize("check", [obj, items, flag])
def test_where_defaults_to_no_prefix(check):
    with pytest.raises(Unexpected, match=r"^The server sent something unexpected: `done` was text where "):
        check({"done": "soon"}, "done")


def test_the_value_is_never_quoted():
    secret = "sk-" + "s" * 40
    with pytest.raises(Unexpected) as caught:
        obj({"message": secret}, "message")
    assert secret not in caught.value.sentence()
