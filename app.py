"""`python app.py`: a Gradio chat that streams from Ollama or the embedded engine. UI wiring only."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from llmstream.backends import Catalog, plan  # noqa: E402
from llmstream.chat import Chat  # noqa: E402
from llmstream import gradio_tuning  # noqa: E402
from llmstream.secrets import install_log_redaction  # noqa: E402
from llmstream.settings import Settings  # noqa: E402

log = logging.getLogger("llmstream.app")


class ModelRadio(gr.Radio):
    """A radio that lets any value through, so the chat refuses unknown models in its own words.

    `is_template` is Gradio's mark for a subclass that renders as its parent (`radio`).
    """

    is_template = True

    def preprocess(self, payload: str | int | float | None) -> str | int | float | None:
        return payload


def parse_args(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description="A streaming chat in the browser: Ollama, or the embedded engine when no server answers.")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1, or GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=int, help="port to listen on (default 7860, or GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", default=None, help="make a public share link")
    parser.add_argument("--auth", help="require a login: user:password[,user2:password2] (or APP_AUTH)")
    args = parser.parse_args(argv)
    return {
        "GRADIO_SERVER_NAME": args.host,
        "GRADIO_SERVER_PORT": args.port,
        "GRADIO_SHARE": args.share,
        "APP_AUTH": args.auth,
    }


def build(settings: Settings, chat: Chat, status: str) -> gr.Blocks:
    async def refresh(current: str | None) -> gr.Radio:
        await chat.catalog.refresh()
        value = current if current in chat.models else (chat.models[0] if chat.models else None)
        return gr.Radio(choices=chat.models, value=value)

    def header() -> str:
        return "\n\n".join([f"## llmstream\n{status}", *chat.catalog.notes()])

    def tick() -> tuple[str, gr.Timer]:
        return header(), gr.Timer(active=chat.catalog.preparing)

    with gr.Blocks(title="llmstream", fill_height=True) as demo:
        title = gr.Markdown(header())
        # While the embedded model is fetched or loaded, the status line follows it once a second.
        timer = gr.Timer(1.0, active=chat.catalog.preparing)
        timer.tick(tick, outputs=[title, timer], api_visibility="private", queue=False)
        model = ModelRadio(
            choices=chat.models,
            value=chat.models[0] if chat.models else None,
            label="Model",
            interactive=True,
        )
        gr.ChatInterface(
            chat.respond,
            additional_inputs=[model],
            api_name="chat",
            concurrency_limit=settings.concurrency_limit,
            fill_height=True,
            save_history=True,  # conversations live in the browser and survive a reload
        )
        demo.load(refresh, inputs=[model], outputs=[model], api_visibility="private", queue=False)
        demo.load(tick, outputs=[title, timer], api_visibility="private", queue=False)
    return demo


def create(settings: Settings) -> tuple[gr.Blocks, Chat]:
    """Decide the backends and build the page: everything `launch` needs."""
    redact = settings.redactor()
    install_log_redaction(redact)
    gradio_tuning.apply()
    found = asyncio.run(plan(settings))
    catalog = Catalog.from_plan(settings, found)
    log.info("%s Models: %s", found.status, ", ".join(catalog.models) or "none")
    if found.problem:
        log.warning("%s", found.problem.sentence())
    chat = Chat(
        catalog,
        system_prompt=settings.system_prompt,
        max_input_chars=settings.max_input_chars,
        update_interval=settings.update_interval,
        redact=redact,
    )
    demo = build(settings, chat, found.status)
    demo.queue(default_concurrency_limit=settings.concurrency_limit)
    gradio_tuning.freeze_startup_objects()
    return demo, chat


def launch(demo: gr.Blocks, settings: Settings, **kwargs: object) -> None:
    for warning in settings.launch_warnings():
        print(warning, file=sys.stderr, flush=True)
    demo.launch(
        server_name=settings.server_name,
        server_port=settings.server_port,
        share=settings.share,
        auth=list(settings.app_auth) or None,
        # Gradio runs at most `max_threads` events at once across the whole app (its queue
        # has that many worker slots), whatever each event's concurrency limit says.
        max_threads=max(40, settings.concurrency_limit + 10),
        # Gradio keeps per-session state (about 40 KB each) for this many sessions.
        state_session_capacity=settings.session_capacity,
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load(parse_args(argv))
    except ValueError as exc:
        sys.exit(f"llmstream: {exc}")
    demo, _ = create(settings)
    launch(demo, settings)


if __name__ == "__main__":
    main()
