"""The figures line under an answer: the server's own numbers where it gives them, ours otherwise."""

from __future__ import annotations

from llmstream.backends.protocol import Delta, Stats
from llmstream.stats import Meter


def metered(*timed: tuple[float, Delta], started: float = 10.0) -> Meter:
    meter = Meter(started=started)
    for now, delta in timed:
        meter.add(delta, now)
    return meter


def test_measured_figures_when_the_server_gives_none():
    meter = metered((10.5, Delta("Hel")), (11.0, Delta("lo")), (12.5, Delta(" there", done=True)))
    assert (meter.first_token_at, meter.ended, meter.pieces, meter.tokens) == (10.5, 12.5, 3, 3)
    # 2 tokens after the first, in 2 seconds; the first came 0.5 s after the request.
    assert meter.line() == "3 tokens · 1.0 tok/s · first token 0.50 s"


def test_the_servers_figures_win():
    stats = Stats(tokens=40, generation_seconds=0.5, load_seconds=0.25, prompt_seconds=0.5)
    meter = metered((10.5, Delta("Hi")), (11.0, Delta("!", done=True, stats=stats)))
    assert meter.server is stats and meter.tokens == 40 and meter.pieces == 2
    assert meter.line() == "40 tokens · 80.0 tok/s · first token 0.75 s"
    only_load = metered((10.5, Delta("Hi", done=True, stats=Stats(load_seconds=1.5))))
    assert only_load.line() == "1 token · first token 1.50 s"
    only_prompt = metered((10.5, Delta("Hi", done=True, stats=Stats(prompt_seconds=0.125))))
    assert only_prompt.line() == "1 token · first token 0.12 s"


def test_pieces_count_as_the_tokens_they_carry_and_thinking_counts():
    meter = metered((10.25, Delta(thinking="Hmm", pieces=3)), (11.25, Delta("Yes", pieces=2, done=True)))
    assert meter.first_token_at == 10.25 and meter.tokens == 5
    assert meter.line() == "5 tokens · 4.0 tok/s · first token 0.25 s"


def test_deltas_without_text_start_no_clock_and_count_nothing():
    meter = metered((10.5, Delta(note="loading")), (11.0, Delta()), (12.0, Delta("a")), (13.0, Delta("b", done=True)))
    assert meter.first_token_at == 12.0 and meter.pieces == 2
    assert meter.line() == "2 tokens · 1.0 tok/s · first token 2.00 s"


def test_no_rate_for_one_token_or_no_time_between_first_and_last():
    assert metered((10.5, Delta("a", done=True))).line() == "1 token · first token 0.50 s"
    one_then_the_end = metered((10.5, Delta("a")), (11.5, Delta(done=True)))  # time passed, but no second token
    assert one_then_the_end.line() == "1 token · first token 0.50 s"
    same_moment = metered((10.5, Delta("a")), (10.5, Delta("b", done=True)))
    assert same_moment.line() == "2 tokens · first token 0.50 s"
    unfinished = metered((10.5, Delta("a")), (11.5, Delta("b")))
    assert unfinished.ended is None and unfinished.line() == "2 tokens · first token 0.50 s"


def test_a_server_count_without_a_duration_falls_back_to_the_measured_rate():
    meter = metered((10.0, Delta("a")), (12.0, Delta("b", done=True, stats=Stats(tokens=9))))
    assert meter.line() == "9 tokens · 4.0 tok/s · first token 0.00 s"
    zero = metered((10.0, Delta("a")), (12.0, Delta("b", done=True, stats=Stats(tokens=0, generation_seconds=1.0))))
    assert zero.tokens == 0 and zero.line() == "0 tokens · first token 0.00 s"


def test_nothing_yet():
    assert Meter(started=1.0).line() == "0 tokens"
