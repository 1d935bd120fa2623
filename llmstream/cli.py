"""`llmstream "prompt"` (or `python -m llmstream`): stream an answer to the terminal.

Tokens are printed as they arrive (the lessons' `print(..., end="", flush=True)`);
reasoning is shown inline as `[think]...[/think]`. Errors print one sentence on stderr
and exit non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import TextIO

from llmstream.backends.catalog import Catalog, Route, plan
from llmstream.codecs.think import Bracketed

from . import __version__
from .crashes import report_native_crashes
from .errors import BadInput, LLMStreamError, NoBackend
from .options import Options
from .request import conversation, new_images
from .runaway import capped
from .secrets import Redactor, install_log_redaction
from .settings import BACKENDS, Settings
from .stats import Meter


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llmstream", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("prompt", nargs="?", help="what to ask; read from stdin when omitted")
    parser.add_argument("--model", "-m", help="model to use (default: the first one offered)")
    parser.add_argument(
        "--backend", help=f"auto, or a comma-separated list of {', '.join(BACKENDS)} (default: BACKEND, or auto)"
    )
    parser.add_argument("--system", help="system prompt (default: SYSTEM_PROMPT)")
    parser.add_argument("--temperature", type=float, help="0 to 2 (default: the model's own)")
    parser.add_argument("--top-p", type=float, help="0 to 1 (default: the model's own)")
    parser.add_argument("--max-tokens", type=int, help="longest answer in tokens (default: the model's own limit)")
    parser.add_argument(
        "--image", action="append", default=[], metavar="PATH", help="an image for a vision model (up to 4)"
    )
    parser.add_argument("--stats", action="store_true", help="print tokens, tokens/s and time to first token on stderr")
    return parser.parse_args(argv)


def pick(catalog: Catalog, model: str | None) -> Route:
    """The route for `--model`; Ollama may be asked for any model it might have."""
    if catalog.problem is not None and not catalog.routes:
        raise catalog.problem
    if not catalog.routes and not model:
        raise NoBackend("No model is offered here.", hint="Name one with --model.")
    if not model:
        return next(iter(catalog.routes.values()))
    if model in catalog.routes:
        return catalog.routes[model]
    for name, route in catalog.routes.items():
        if name.split(" (")[0] == model:
            return route
    if "ollama" in catalog.backends:
        return Route(catalog.backends["ollama"], model)
    raise BadInput(f"The model {model!r} is not available.", hint=f"Choose one of: {', '.join(catalog.models)}.")


async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = Settings.load({"BACKEND": args.backend, "SYSTEM_PROMPT": args.system})
    redact = settings.redactor()
    undo = install_log_redaction(redact)
    try:
        return await _run(args, settings, redact, out, err)
    finally:
        undo()


async def _run(args: argparse.Namespace, settings: Settings, redact: Redactor, out: TextIO, err: TextIO) -> int:
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if not prompt.strip():
        print("llmstream: the prompt is empty. Pass it as an argument or on stdin.", file=err)
        return 2
    try:
        options = Options.checked(args.temperature, args.top_p, args.max_tokens)
        images = new_images(args.image, settings.limits(), None)
    except BadInput as exc:
        print(f"llmstream: {exc.sentence()}", file=err)
        return 2
    catalog = Catalog.from_plan(settings, await plan(settings))
    try:
        route = pick(catalog, args.model)
        messages = conversation([], prompt, settings.system_prompt)
        if images:
            if not await route.backend.sees_images(route.model):
                raise BadInput(
                    f"{route.model} can't see images.",
                    hint="Pick a vision model with --model (llava, gemma3, qwen2.5vl…).",
                )
            messages[-1]["images"] = images
        plain, meter = Bracketed(), Meter()
        stream = capped(route.backend.stream_chat(route.model, messages, options), settings.max_answer_chars)
        try:
            async for delta in stream:
                meter.add(delta, time.monotonic())
                out.write(plain.feed(delta.content, delta.thinking, delta.done))
                out.flush()
        finally:
            await stream.aclose()
        out.write(plain.close() + "\n")
        out.flush()
        if args.stats:
            print(meter.line(), file=err)
        return 0
    except LLMStreamError as exc:
        out.write("\n")
        out.flush()
        print(f"llmstream: {redact(exc.sentence())}", file=err)
        return 1
    finally:
        await catalog.aclose()


def main(argv: list[str] | None = None) -> int:
    report_native_crashes()
    args = parse_args(argv)
    try:
        return asyncio.run(run(args, sys.stdout, sys.stderr))
    except ValueError as exc:  # a bad setting
        print(f"llmstream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `| head`: the reader left, which is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
