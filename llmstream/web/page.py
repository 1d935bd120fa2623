"""The Gradio page: model selector, chat, and the Settings under it. Only `app.py` imports this.

Every check lives in the core (`Chat.prepare`), so the components here let any value
through to it: a person or an API client then reads the same one sentence, in the chat,
whatever they sent.

Sampling settings have two faces. The API's `temperature`, `top_p` and `max_tokens` are
hidden number fields that start empty (None: not sent, the model's own default); the
sliders people drag copy their value into them, in the browser, only when moved. So an
untouched slider sends nothing, and an API call that leaves a setting out does the same.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.components.multimodal_textbox import MultimodalData, MultimodalValue
from pydantic import model_validator

from llmstream.chat import Chat
from llmstream.compare import MIN_MODELS
from llmstream.options import MAX_TOKENS_LIMIT, TEMPERATURE_RANGE, TOP_P_RANGE
from llmstream.settings import Settings

from .compare_tab import build_compare
from .welcome import examples, welcome

# The figures under an answer read as a caption (the Compare tab's columns share it); the
# empty chat's welcome clears the chat's label, and its example cards skip Gradio's icon.
CSS = """
.figures { font-size: var(--text-sm); color: var(--body-text-color-subdued); }
#conversation .placeholder { padding: var(--size-6) var(--size-4) 0; }
#conversation .example-icon { display: none; }
.compare-column .placeholder { padding: 0 var(--size-4); color: var(--body-text-color-subdued); }
"""

# Where the sliders rest until moved: Ollama's documented defaults, a typical answer length.
SLIDER_START = {"temperature": 0.8, "top_p": 0.9, "max_tokens": 1024}
UNTOUCHED = "Not sent until you move it: each model uses its own default."


class ModelRadio(gr.Radio):
    """A radio that lets any value through, so the chat refuses unknown models in its own words.

    `is_template` is Gradio's mark for a subclass that renders as its parent (`radio`).
    """

    is_template = True

    def preprocess(self, payload: str | int | float | None) -> str | int | float | None:
        return payload


class _ChatBoxData(MultimodalData):
    """Gradio's `{"text", "files"}` message, also accepted as a plain string from API clients."""

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return {"text": value, "files": []} if isinstance(value, str) else value


class ChatBox(gr.MultimodalTextbox):
    """The multimodal message box. File types are checked by the core, which decodes each image."""

    is_template = True
    data_model = _ChatBoxData

    def preprocess(self, payload: MultimodalData | None) -> MultimodalValue | None:
        if payload is None:
            return None
        return {"text": payload.text, "files": [f.path for f in payload.files]}


class SettingValue(gr.Number):
    """A hidden API input: None until set, any value passed to the core's checks."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


def build(settings: Settings, chat: Chat, status: str) -> gr.Blocks:
    async def refresh(current: str | None, picked: list[str] | None) -> tuple[gr.Radio, gr.CheckboxGroup]:
        await chat.catalog.refresh()
        value = current if current in chat.models else (chat.models[0] if chat.models else None)
        kept = [m for m in picked or [] if m in chat.models] or chat.models[:MIN_MODELS]
        return gr.Radio(choices=chat.models, value=value), gr.CheckboxGroup(choices=chat.models, value=kept)

    def header() -> str:
        return "\n\n".join([f"## llmstream\n{status}", *chat.catalog.notes()])

    def tick() -> tuple[str, gr.Timer]:
        return header(), gr.Timer(active=chat.catalog.preparing)

    def greeting(model: str | None) -> dict[str, Any]:
        """The empty chat's welcome and example prompts, for the picked model."""
        cards = [{"text": e.text} for e in examples(model)]
        return {"placeholder": welcome(model, chat.catalog.where(model or ""), chat.models), "examples": cards}

    def greet(model: str | None) -> gr.Chatbot:
        return gr.Chatbot(**greeting(model))

    demo = gr.Blocks(title="llmstream", fill_height=True)
    with demo:
        title = gr.Markdown(header())
        # While the embedded model is fetched or loaded, the status line follows it once a second.
        timer = gr.Timer(1.0, active=chat.catalog.preparing)
        timer.tick(tick, outputs=[title, timer], api_visibility="private", queue=False)
        with gr.Tab("Chat", id="chat"):
            model = ModelRadio(
                choices=chat.models,
                value=chat.models[0] if chat.models else None,
                label="Model",
                interactive=True,
            )
            values = {name: SettingValue(value=None, visible=False, label=name) for name in SLIDER_START}
            chat_area = gr.Column(scale=1)  # filled below, so the chat sits above its Settings
            with gr.Accordion("Settings", open=False, elem_id="settings"):
                system_prompt = gr.Textbox(
                    settings.system_prompt,
                    label="System prompt",
                    placeholder="For example: You are a patient teacher. Answer in two sentences.",
                    lines=2,
                    max_lines=8,
                )
                sliders = _sliders()
                defaults = gr.Button("Use the model's defaults", size="sm", variant="secondary")
            for name, slider in sliders.items():
                # Only what a person does: `input` while dragging or typing, `release` when the drag
                # ends or the number box loses focus (so the last value is caught whatever the timing).
                for event in (slider.input, slider.release):
                    event(None, slider, values[name], js="(v) => v", api_visibility="private", queue=False)
            starts = [SLIDER_START[name] for name in sliders]
            defaults.click(
                None,
                None,
                [*values.values(), *sliders.values(), system_prompt],
                js=f"() => [null, null, null, ...{starts!r}, {settings.system_prompt!r}]",
                api_visibility="private",
                queue=False,
            )
            extra_inputs: list[str | gr.components.Component] = [model, system_prompt, *values.values()]
            with chat_area:
                first = greeting(model.value)
                conversation = gr.Chatbot(
                    label="Conversation",
                    placeholder=first["placeholder"],
                    scale=1,
                    min_height=520,  # on a phone too, the welcome and its examples fit
                    elem_id="conversation",
                )
                gr.ChatInterface(
                    chat.respond,
                    multimodal=True,
                    textbox=ChatBox(
                        file_types=["image"],
                        file_count="multiple",
                        placeholder="Type a message, or paste, drop or attach images…",
                        show_label=False,
                        scale=7,
                        submit_btn=True,
                        stop_btn=True,  # Stop closes the stream to the model (ChatInterface wires it)
                    ),
                    chatbot=conversation,
                    # Messages only: a click sends one with the page's current model and settings.
                    examples=[[card["text"]] + [None] * len(extra_inputs) for card in first["examples"]],
                    cache_examples=False,  # the cards change with the model; nothing to precompute
                    additional_inputs=extra_inputs,
                    api_name="chat",
                    concurrency_limit=settings.concurrency_limit,
                    fill_height=True,
                    save_history=True,  # conversations live in the browser and survive a reload
                )
        with gr.Tab("Compare", id="compare"):
            picks = build_compare(chat, [system_prompt, *values.values()])
        demo.load(refresh, inputs=[model, picks], outputs=[model, picks], api_visibility="private", queue=False)
        demo.load(tick, outputs=[title, timer], api_visibility="private", queue=False)
        model.change(greet, model, conversation, api_visibility="private", queue=False)
    return demo


def _sliders() -> dict[str, gr.Slider]:
    def slider(name: str, low: float, high: float, step: float, label: str) -> gr.Slider:
        return gr.Slider(
            low, high, value=SLIDER_START[name], step=step, label=label, info=UNTOUCHED, buttons=[], elem_id=name
        )

    return {
        "temperature": slider("temperature", *TEMPERATURE_RANGE, 0.05, "Temperature"),
        "top_p": slider("top_p", *TOP_P_RANGE, 0.01, "Top-p"),
        "max_tokens": slider("max_tokens", 1, MAX_TOKENS_LIMIT, 1, "Max tokens"),
    }
