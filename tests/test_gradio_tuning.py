"""The start-up work-arounds for Gradio's per-event and per-session costs change no behaviour."""

from __future__ import annotations

import gradio as gr
from gradio.state_holder import SessionState

from llmstream import gradio_tuning


def test_a_sessions_block_configs_are_built_when_needed_and_all_of_them_when_listed():
    gradio_tuning.lazy_session_configs()
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
