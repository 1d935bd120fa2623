"""A codec's complaint about the bytes, worded by the backends with the fix it can't know."""

from __future__ import annotations

import pytest

from llmstream.backends.http_errors import undecodable
from llmstream.codecs.errors import NotJSON, TooLong, Unfinished
from llmstream.errors import StreamBroken


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (TooLong("The server sent a line longer than 16 bytes.", 16), "Raise MAX_LINE_BYTES if that is expected."),
        (
            Unfinished("The server's stream ended in the middle of a message."),
            "The connection may have been cut; try again.",
        ),
        (NotJSON("The server sent a line that is not JSON ('<html>')."), "Is X pointing at the right server?"),
    ],
)
def test_a_codec_error_reads_as_a_broken_stream_with_its_fix(error, hint):
    broken = undecodable(error, "Is X pointing at the right server?")
    assert isinstance(broken, StreamBroken)
    assert (broken.message, broken.hint) == (str(error), hint)


def test_without_a_hint_of_its_own_a_backend_adds_none():
    assert undecodable(NotJSON("The server sent a line that is not JSON ('x').")).sentence() == (
        "The server sent a line that is not JSON ('x')."
    )
