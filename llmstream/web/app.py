"""`llmstream-app` (and `python app.py`): start-up of the chat in the browser.

Flags and settings, the backends, the page (`page.py`), launch. `llmstream/web/` (with
`llmstream/serve/`) is the only layer that imports Gradio; `import llmstream` never does.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import weakref
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from llmstream import __version__, logs
from llmstream.backends.catalog import Catalog, plan
from llmstream.chat import Chat
from llmstream.crashes import report_native_crashes
from llmstream.secrets import install_log_redaction
from llmstream.serve.drain import Drain
from llmstream.serve.service import Service
from llmstream.settings import Settings
from llmstream.telemetry import Telemetry

from . import gradio_tuning
from .page import CSS, build

log = logging.getLogger("llmstream.web.app")
# Each page's probes and metrics, for launch() (create() returns the page and its chat, as it always has).
_services: weakref.WeakKeyDictionary[gr.Blocks, Service] = weakref.WeakKeyDictionary()


def parse_args(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(
        prog="llmstream-app",
        description="A streaming chat in the browser: Ollama, or the embedded engine when no server answers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1, or GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=int, help="port to listen on (default 7860, or GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true", default=None, help="make a public share link")
    parser.add_argument("--auth", help="require a login: user:password[,user2:password2] (or APP_AUTH)")
    parser.add_argument(
        "--replicas",
        type=int,
        default=0,
        metavar="N",
        help="run N app processes behind HAProxy on --host/--port (needs haproxy; see README)",
    )
    args = parser.parse_args(argv)
    if args.replicas < 0:
        parser.error("--replicas must be 1 or more")
    return {
        "REPLICAS": args.replicas,
        "GRADIO_SERVER_NAME": args.host,
        "GRADIO_SERVER_PORT": args.port,
        "GRADIO_SHARE": args.share,
        "APP_AUTH": args.auth,
    }


def create(settings: Settings) -> tuple[gr.Blocks, Chat]:
    """Decide the backends and build the page: everything `launch` needs."""
    redact = settings.redactor()
    install_log_redaction(redact)
    gradio_tuning.apply(settings.gradio_patches)
    found = asyncio.run(plan(settings))
    catalog = Catalog.from_plan(settings, found)
    log.info("%s Models: %s", found.status, ", ".join(catalog.models) or "none")
    if found.problem:
        log.warning("%s", found.problem.sentence())
    telemetry = Telemetry(replica=os.environ.get("LLMSTREAM_REPLICA", ""))  # set by the replica launcher
    service = Service(catalog, settings, telemetry)
    chat = Chat(
        catalog,
        system_prompt=settings.system_prompt,
        limits=settings.limits(),
        upload_roots=[gr.utils.get_upload_folder()],  # attachments are read from Gradio's uploads only
        update_interval=settings.update_interval,
        redact=redact,
        telemetry=telemetry,
        accepting=lambda: not service.draining,
    )
    demo = build(settings, chat, found.status)
    demo.queue(default_concurrency_limit=settings.concurrency_limit)
    service.watch_queue(demo._queue)
    _services[demo] = service
    gradio_tuning.freeze_startup_objects()
    return demo, chat


def launch(demo: gr.Blocks, settings: Settings, **kwargs: Any) -> None:
    for warning in settings.launch_warnings():
        print(warning, file=sys.stderr, flush=True)
    service = _services.get(demo)
    if service is not None:  # /healthz, /readyz and /metrics, registered before Gradio's own routes
        app_kwargs = dict(kwargs.pop("app_kwargs", None) or {})
        app_kwargs["routes"] = [*service.routes(), *app_kwargs.get("routes", [])]
        app_kwargs.setdefault("lifespan", service.lifespan)
        kwargs["app_kwargs"] = app_kwargs
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
        # Gradio refuses far larger uploads before they reach the disk; the chat explains the limit itself.
        max_file_size=int(2 * settings.max_image_mb * 2**20),
        css=CSS,
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    report_native_crashes()
    args = parse_args(argv)
    replicas = int(args.pop("REPLICAS") or 0)  # type: ignore[call-overload]
    try:
        settings = Settings.load(args)
    except ValueError as exc:
        sys.exit(f"llmstream: {exc}")
    logs.configure(settings.log_level, settings.log_format)
    if replicas:
        sys.exit(run_replicas(replicas, settings))
    # Ctrl-C and `kill -INT` stop a server however it was started, as with uvicorn and the replica
    # launcher: a shell script's `python app.py &` starts it with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # Ctrl-C at any point, start-up included: no drain, no wait for open streams, no traceback
        demo, chat = create(settings)
        drain = Drain(_services[demo], settings.drain_seconds, chat.catalog.aclose)
        drain.install()
        launch(demo, settings, prevent_thread_lock=True)
        while not drain.done.wait(0.2):
            pass
        log.info("drained: exiting")
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr, flush=True)
        sys.exit(130)
    demo.close(verbose=False)


def run_replicas(count: int, settings: Settings) -> int:
    """`--replicas N`: the launcher takes over (llmstream/serve/replicas.py)."""
    from llmstream.serve.replicas import Launcher

    if settings.share:
        print("llmstream: --share makes one process's link; it does not go with --replicas.", file=sys.stderr)
        return 2
    env = {}
    if settings.app_auth:  # to the replicas through their environment, never their command line (ps shows it)
        env["APP_AUTH"] = ",".join(f"{user}:{password}" for user, password in settings.app_auth)
    if "embedded" in settings.backend:
        log.warning(
            "every replica loads its own copy of the embedded model; for a crowd, run one model server "
            "(llama-server, Ollama) and point the replicas at it (README, Running for a crowd)"
        )
    return Launcher(count, settings.server_name, settings.server_port, env).run()


if __name__ == "__main__":
    main()
