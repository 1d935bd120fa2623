"""The start-up work-arounds for Gradio's per-event and per-session costs change no behaviour."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import gradio as gr
import pytest
from gradio.state_holder import SessionState

from llmstream.web import gradio_tuning


@pytest.fixture(autouse=True)
def unpatched() -> Iterator[None]:
    """Each test starts from Gradio as installed and leaves it so: whether a test passes must
    not depend on another having patched Gradio first."""
    gradio_tuning.undo()
    yield
    gradio_tuning.undo()


def test_a_sessions_block_configs_are_built_when_needed_and_all_of_them_when_listed():
    assert gradio_tuning.lazy_session_configs()
    assert not gradio_tuning.lazy_session_configs()  # applied once
    with gr.Blocks() as demo:
        box = gr.Textbox("hello", label="Message")
        gr.Slider(0, 2, value=0.8, label="Temperature")
        with gr.Accordion("Settings"):
            gr.Number(value=None, visible=False)
    lazy = SessionState(demo)
    eager = SessionState.__new__(SessionState)
    SessionState.__init__._original(eager, demo)
    assert dict.__len__(lazy.config_values) == 0 < len(eager.config_values)  # nothing built up front
    for state in (lazy, eager):
        state._update_value_in_config(box._id, "changed")  # what an event does with its inputs
    by_id = lambda state: sorted(state.components, key=lambda c: c["id"])  # noqa: E731
    assert by_id(lazy) == by_id(eager)  # a deep link sees the same page
    assert next(c for c in by_id(lazy) if c["id"] == box._id)["props"]["value"] == "changed"


def _session(demo: gr.Blocks) -> SessionState:
    state = SessionState.__new__(SessionState)
    gradio_init = getattr(SessionState.__init__, "_original", SessionState.__init__)
    gradio_init(state, demo)  # Gradio's own, every config built
    return state


def test_setting_a_state_stores_the_value_and_keeps_the_config_gradio_would_build():
    assert gradio_tuning.quick_state_updates()
    quick = SessionState.__setitem__
    assert quick._quick and not gradio_tuning.quick_state_updates()  # applied once
    with gr.Blocks() as demo:
        history = gr.State([], time_to_live=60)
        box = gr.Textbox("hello")
    patched, gradio = _session(demo), _session(demo)
    for value in ([{"role": "user", "content": "hi"}], [{"role": "user", "content": "hi again"}]):
        quick(patched, history._id, value)
        quick._original(gradio, history._id, value)
    for state in (patched, gradio):
        assert state[history._id] == [{"role": "user", "content": "hi again"}]
        assert state._state_ttl[history._id][0] == 60
    assert patched.config_values == gradio.config_values
    replacement = gr.Textbox("other", render=False)
    quick(patched, box._id, replacement)  # anything but a State: Gradio's own method
    assert patched.blocks_config.blocks[box._id] is replacement


def test_states_with_change_listeners_are_found_as_gradio_finds_them():
    assert gradio_tuning.remembered_state_listeners()
    remembered = gr.Blocks.get_state_ids_to_track
    assert remembered._remembered and not gradio_tuning.remembered_state_listeners()
    with gr.Blocks() as demo:
        watched, quiet = gr.State(0), gr.State(0)
        box = gr.Textbox()
        watched.change(lambda x: x, watched, box)
        box.submit(lambda x: (1, 2), box, [watched, quiet])
    block_fn = demo.fns[1]
    state = _session(demo)
    state[watched._id] = {"n": 1}
    assert remembered(demo, block_fn, state) == remembered._original(demo, block_fn, state)
    assert remembered(demo, block_fn, state)[0] == [watched._id]
    assert state._llmstream_change_ids[1] == {watched._id}  # remembered by the session itself
    assert remembered(demo, block_fn, None) == ([], [])
    with demo:  # an event added later (as a reload does) is seen by the sessions after it
        quiet.change(lambda x: x, quiet, box)
    state = _session(demo)
    assert remembered(demo, block_fn, state) == remembered._original(demo, block_fn, state)
    assert remembered(demo, block_fn, state)[0] == [watched._id, quiet._id]


def test_a_page_that_renders_keeps_gradios_own_scan():
    assert gradio_tuning.remembered_state_listeners()
    remembered = gr.Blocks.get_state_ids_to_track
    with gr.Blocks() as demo:
        count = gr.State(1)
        box = gr.Textbox()

        @gr.render(inputs=count)
        def show(n):
            gr.Markdown(str(n))

        box.submit(lambda x: 2, box, count)
    block_fn = next(fn for fn in demo.fns.values() if count in fn.outputs)
    state = _session(demo)
    assert state.blocks_config.renderables
    assert remembered(demo, block_fn, state) == remembered._original(demo, block_fn, state)
    assert remembered(demo, block_fn, state)[0] == [count._id]  # gr.render listens to its changes
    assert not hasattr(state, "_llmstream_change_ids")  # Gradio's scan, every time


def test_a_patch_whose_target_changed_does_nothing_and_says_so(caplog):
    class Elsewhere:
        def __setitem__(self, key, value):  # same signature, different body
            pass

    assert gradio_tuning._expected(Elsewhere, "__setitem__", ["self", "key", "value"], "_state_ttl") is None
    assert gradio_tuning._expected(Elsewhere, "missing", ["self"]) is None
    assert "Elsewhere.__setitem__ is not what llmstream expects" in caplog.text
    assert gradio_tuning._expected(Elsewhere, "__setitem__", ["self", "key", "value"], "pass") is not None


def test_undo_puts_back_gradio_the_environment_and_the_collector():
    from gradio.blocks import Blocks

    originals = (SessionState.__init__, SessionState.__setitem__, Blocks.get_state_ids_to_track)
    frozen = gc.get_freeze_count()
    analytics = os.environ.pop("GRADIO_ANALYTICS_CACHE_FREQUENCY", None)
    try:
        gradio_tuning.apply()
        gradio_tuning.freeze_startup_objects()
        assert (SessionState.__init__, SessionState.__setitem__, Blocks.get_state_ids_to_track) != originals
        assert os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"] == gradio_tuning.ANALYTICS_EVERY
        assert gc.get_freeze_count() > frozen
        gradio_tuning.undo()
        assert (SessionState.__init__, SessionState.__setitem__, Blocks.get_state_ids_to_track) == originals
        assert "GRADIO_ANALYTICS_CACHE_FREQUENCY" not in os.environ
        assert gc.get_freeze_count() == frozen
        assert gradio_tuning.lazy_session_configs()  # can be applied again
    finally:
        if analytics is not None:
            os.environ["GRADIO_ANALYTICS_CACHE_FREQUENCY"] = analytics
