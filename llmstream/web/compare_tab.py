"""The Compare tab and Gradio's `/compare` endpoint (Gradio code; only `page.py` imports this)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any, TypedDict

import gradio as gr
from gradio.events import api as gradio_api

from llmstream.chat import Chat
from llmstream.compare import MAX_MODELS, MIN_MODELS, Messages, chosen, compare
from llmstream.errors import BadInput


def build_compare(chat: Chat, settings_inputs: list[gr.components.Component]) -> gr.CheckboxGroup:
    """The tab's components and events, inside the page's Blocks; `settings_inputs` are the
    chat's `(system_prompt, temperature, top_p, max_tokens)`, which apply here too. Returns the
    models' checkboxes, which follow the model list when the page loads."""
    offered = chat.models
    picks = gr.CheckboxGroup(
        choices=offered,
        value=offered[:MIN_MODELS],
        label="Models",
        info=f"{MIN_MODELS} to {MAX_MODELS}, answering at once. The Settings under the chat apply here too.",
        elem_id="compare-models",
    )
    with gr.Row(equal_height=True):
        columns = [
            gr.Chatbot(
                **_heading(offered, i),
                visible=i < MIN_MODELS and i < len(offered),
                height=480,
                elem_classes="compare-column",
            )
            for i in range(MAX_MODELS)
        ]
    with gr.Row():
        prompt = gr.Textbox(
            placeholder="One prompt for every model…", show_label=False, scale=6, lines=1, min_width=300
        )
        send = gr.Button("Send", variant="primary", scale=1, min_width=80)
        stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, visible=False)
        clear = gr.Button("Clear", scale=1, min_width=80, elem_id="compare-clear")
    histories = gr.State({})  # each model's own conversation: follow-ups continue it
    asked = gr.State("")  # the prompt being answered (the box is emptied at once)

    def relabel(models: list[str]) -> list[Any]:
        shown = list(models or [])[:MAX_MODELS]
        return [gr.Chatbot(**_heading(shown, i), visible=i < len(shown)) for i in range(MAX_MODELS)]

    async def run(
        message: str, models: list[str], past: dict[str, Messages], *settings: Any
    ) -> AsyncGenerator[list[Any]]:
        try:
            models = chosen(models, chat.models)
        except BadInput as exc:
            raise gr.Error(exc.sentence()) from None
        before = {m: list(past.get(m, [])) for m in models}
        turn = {"role": "user", "content": message}
        state: dict[str, Messages] = {}
        async for state in compare(chat, message, models, before, *settings):
            yield [*_values(models, before, turn, state), gr.skip()]  # the conversations change once, at the end
        yield [*_values(models, before, turn, state), {**past, **{m: [*before[m], turn, *state[m]] for m in models}}]

    def start(text: str) -> tuple[Any, ...]:
        return gr.Button(visible=False), gr.Button(visible=True), text, ""

    def end() -> tuple[Any, ...]:
        return gr.Button(visible=True), gr.Button(visible=False)

    private: dict[str, Any] = {"api_visibility": "private"}
    picks.change(relabel, picks, columns, queue=False, **private)
    answers = []
    for trigger in (send.click, prompt.submit):
        answer = trigger(start, prompt, [send, stop, asked, prompt], queue=False, **private).then(
            run, [asked, picks, histories, *settings_inputs], [*columns, histories], **private
        )
        answer.then(end, None, [send, stop], queue=False, **private)
        answers.append(answer)
    stop.click(end, None, [send, stop], cancels=answers, queue=False, **private)
    # Clear first stops answers still streaming (they would fill the columns again), then empties.
    clear.click(end, None, [send, stop], cancels=answers, queue=False, **private).then(
        lambda: [[] for _ in columns] + [{}], None, [*columns, histories], queue=False, **private
    )
    for i, column in enumerate(columns):  # a column's own trash icon starts that model over

        def forget(models: list[str], past: dict[str, Messages], i: int = i) -> dict[str, Messages]:
            gone = list(models or [])[i : i + 1]
            return {m: h for m, h in past.items() if m not in gone}

        column.clear(forget, [picks, histories], histories, queue=False, **private)

    async def compare_api(message: str, models: list[str]) -> AsyncGenerator[list[dict[str, Any]]]:
        """Each chosen model's answer so far, in the order given: `[{"model", "messages"}, ...]`."""
        try:
            picked = chosen(models, chat.models)
        except BadInput as exc:
            raise gr.Error(exc.sentence()) from None
        async for state in compare(chat, message, picked):
            yield [{"model": m, "messages": state[m]} for m in picked]

    gradio_api(compare_api, api_name="compare")
    return picks


class _Heading(TypedDict):
    label: str
    placeholder: str


def _heading(models: Sequence[str], i: int) -> _Heading:
    """Column `i`'s label and empty-state placeholder: the model it shows, if any."""
    model = models[i] if i < len(models) else ""
    return {"label": model, "placeholder": f"{model}'s answer appears here." if model else ""}


def _values(
    models: list[str], before: dict[str, Messages], turn: dict[str, Any], state: dict[str, Messages]
) -> list[Messages]:
    """Each column's whole conversation as it stands; empty for columns not in use."""
    shown = [[*before[m], turn, *state.get(m, [])] for m in models]
    return shown + [[] for _ in range(MAX_MODELS - len(shown))]
