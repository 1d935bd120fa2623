"""End-to-end load benchmark: our app against the lessons' plain app and a raw relay, in the same run.

A scripted Ollama server (its own process) streams the tokens ` t0`, ` t1`, ... on a fixed
schedule and logs when it sent each one. A driver (this process) speaks Gradio's queue
protocol for N concurrent users and timestamps every update as it arrives. For each app
and scenario it reports:

- added latency per token: arrival in the client minus departure from the server (p50, p99);
- time to first token (from the user's request);
- errors (failed, or incomplete when the scenario's time is up);
- the app's CPU seconds per 1000 tokens (from /proc, the app process only).

Run: `python bench/load.py` (all scenarios; our app, the lessons' app and the raw relay of
`bench/raw_relay.py`, the physical limit; about 7 minutes on 2 cores), or
`python bench/load.py --quick`. With `--profile DIR` the app is recorded with py-spy and
`bench/breakdown.py` prints where its CPU went, per update and per token. Results are printed as a table with ratios: baseline ÷ ours, ours ÷ raw relay.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from breakdown import table as breakdown_table  # noqa: E402
from gradio_queue import ChatRun, GradioQueue, reply_text  # noqa: E402


class RawRelayClient:
    """The driver's side of `bench/raw_relay.py`: one SSE stream per chat, text accumulated."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url.rstrip("/")
        self.client = client

    async def chat(self, message: str, model: str, *, on_update=None) -> ChatRun:
        run = ChatRun(started=time.time())
        text = ""
        try:
            async with self.client.stream(
                "POST", f"{self.url}/chat", content=orjson.dumps({"message": message, "model": model})
            ) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    if line == "data: [DONE]":
                        run.final = text
                        return run
                    text += orjson.loads(line[6:])["content"]
                    if on_update is not None:
                        on_update(time.time(), text)
            run.error = "stream closed before the answer completed"
        except httpx.HTTPError as exc:
            run.error = f"{type(exc).__name__}: {exc}"
        return run


TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Scenario:
    name: str
    users: int
    tokens: int
    rate: float
    arrival: float = 0.0  # users arrive evenly over this many seconds
    segments: bool = False  # report the first and last thousand tokens apart
    models: int = 1  # more than 1: each user compares that many models (`/compare`)

    @property
    def limit(self) -> float:
        return self.arrival + self.tokens / self.rate + 30


SCENARIOS = [
    Scenario("fast: 1 user, 2000 tok at 1000/s", 1, 2000, 1000),
    Scenario("crowd: 100 users over 4 s, 400 tok at 50/s", 100, 400, 50, arrival=4),
    Scenario("long: 1 user, 20000 tok at 1000/s", 1, 20000, 1000, segments=True),
    Scenario("compare: 25 users x 4 models over 4 s, 400 tok at 50/s", 25, 400, 50, arrival=4, models=4),
]
QUICK = [
    Scenario("1 user, 1000 tok at 1000/s", 1, 1000, 1000),
    Scenario("30 users over 2 s, 200 tok at 50/s", 30, 200, 50, arrival=2),
]


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    errors: int = 0
    missing_first: int = 0
    tokens: int = 0
    updates: int = 0  # updates the clients received (Gradio messages, or the relay's events)
    cpu: float = 0.0
    segment_latency: tuple[float, float] | None = None
    segment_cpu: tuple[float, float] | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and every process under it (`--replicas`: the replicas and HAProxy)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    tree, total = [pid], 0.0
    while tree:
        current = tree.pop()
        total += stats.get(current, (0, 0.0))[1]
        tree += [child for child, (parent, _) in stats.items() if parent == current]
    return total


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


def start(cmd: list[str], env: dict[str, str], url: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_http(url, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def count_tokens(output) -> int:
    text = output if isinstance(output, str) else reply_text(output)
    tail = text[-16:].rsplit(" t", 1)
    return int(tail[1]) + 1 if len(tail) == 2 and tail[1].isdigit() else 0


async def run_scenario(app_url: str, server_url: str, pid: int, tag: str, sc: Scenario, raw: bool = False) -> Result:
    limits = httpx.Limits(max_connections=4 * sc.users + 10, max_keepalive_connections=4 * sc.users + 10)
    async with httpx.AsyncClient(timeout=httpx.Timeout(sc.limit, connect=10), limits=limits) as client:
        # One client for every user: it keeps no cookie, or a balancer's sticky cookie would pin them
        # all to one replica; each user is pinned by its own Gradio session hash instead.
        client.cookies.jar.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        queue: GradioQueue | RawRelayClient = RawRelayClient(app_url, client) if raw else GradioQueue(app_url, client)
        for _ in range(3):
            warm = await queue.chat("bench id=warmup tokens=20 rate=1000", "bench")
            if warm.error:
                raise RuntimeError(f"warm-up chat failed: {warm.error}")
        if sc.models > 1:
            queue = GradioQueue(app_url, client, api_name="compare")
        arrivals: dict[str, list[tuple[float, int]]] = {}
        starts: dict[str, float] = {}
        samples: list[tuple[float, float]] = []
        sampling = True
        updates = 0

        def sample() -> None:
            while sampling:
                samples.append((time.time(), cpu_seconds(pid)))
                time.sleep(0.25)

        models = ["bench", *(f"bench-{k}" for k in range(2, sc.models + 1))] if sc.models > 1 else []

        async def user(i: int) -> bool:
            await asyncio.sleep(sc.arrival * i / max(1, sc.users))
            uid = f"{tag}-{i}"
            # one stream per model: the scripted server times a twin's tokens as `uid@model`
            keys = [uid if m == "bench" else f"{uid}@{m}" for m in models] or [uid]
            for key in keys:
                arrivals[key] = []
                starts[key] = time.time()

            def on_update(now: float, output) -> None:
                nonlocal updates
                updates += 1
                columns = [reply_text(c["messages"]) for c in output] if models else [output]
                for key, column in zip(keys, columns, strict=False):
                    n, seen = count_tokens(column), arrivals[key]
                    if n and (not seen or n > seen[-1][1]):
                        seen.append((now, n))

            try:
                run = await asyncio.wait_for(
                    queue.chat(
                        f"bench id={uid} tokens={sc.tokens} rate={sc.rate}", models or "bench", on_update=on_update
                    ),
                    sc.limit,
                )
            except TimeoutError:
                if os.environ.get("BENCH_DEBUG"):
                    print("timed out user", uid, seen[-1:])
                return False
            complete = all(arrivals[k] and arrivals[k][-1][1] == sc.tokens for k in keys)
            if os.environ.get("BENCH_DEBUG") and (run.error or not complete):
                print("failed user", uid, run.error, str(run.final)[:200])
            return run.error is None and complete

        cpu_before = cpu_seconds(pid)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        ok = await asyncio.gather(*(user(i) for i in range(sc.users)))
        sampling = False
        sampler.join()
        cpu = cpu_seconds(pid) - cpu_before
        sent = (await client.get(f"{server_url}/_scripted/sent")).json()

    result = Result(errors=ok.count(False), cpu=cpu, updates=updates)
    for uid, seen in arrivals.items():
        times = sent.get(uid, [])
        if not seen:
            result.missing_first += 1
            continue
        result.first_tokens.append(seen[0][0] - starts[uid])
        previous = 0
        for arrived, n in seen:
            result.latencies += [arrived - times[j] for j in range(previous, min(n, len(times)))]
            previous = n
        result.tokens += previous
    if sc.segments and arrivals:
        ((uid, seen),) = arrivals.items()
        times = sent[uid]
        per_token = []
        previous = 0
        for arrived, n in seen:
            per_token += [arrived - times[j] for j in range(previous, n)]
            previous = n
        head, tail = per_token[:1000], per_token[-1000:]
        result.segment_latency = (pct(head, 0.99), pct(tail, 0.99))
        result.segment_cpu = (
            cpu_between(samples, times[0], times[min(999, len(times) - 1)]),
            cpu_between(samples, times[-1000], times[-1]),
        )
    if os.environ.get("BENCH_DEBUG"):
        by_second: dict[int, list[float]] = {}
        t0 = min(min(v) for v in sent.values() if v)
        for uid, seen in arrivals.items():
            times, previous = sent.get(uid, []), 0
            for arrived, n in seen:
                for j in range(previous, min(n, len(times))):
                    by_second.setdefault(int(times[j] - t0), []).append(arrived - times[j])
                previous = n
        print("p99 by second:", {k: round(1000 * pct(v, 0.99)) for k, v in sorted(by_second.items())})
        tail_lat = [seen[-1][0] - sent[uid][-1] for uid, seen in arrivals.items() if seen and sent.get(uid)]
        if os.environ.get("BENCH_DUMP"):
            Path(os.environ["BENCH_DUMP"]).write_text(json.dumps({"sent": sent, "arrivals": arrivals}))
        print("last token latency p50/p99 ms:", round(1000 * pct(tail_lat, 0.5)), round(1000 * pct(tail_lat, 0.99)))
        print("first tokens (s):", sorted(round(x, 2) for x in result.first_tokens), "missing", result.missing_first)
    return result


def cpu_between(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """CPU seconds per 1000 tokens spent by the app between two wall-clock times."""
    inside = [(t, c) for t, c in samples if start <= t <= end + 0.25]
    if len(inside) < 2:
        return float("nan")
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    return (c1 - c0) / max(1e-9, t1 - t0)


def row(name: str, r: Result) -> dict[str, float]:
    return {
        "p50_ms": 1000 * pct(r.latencies, 0.5),
        "p99_ms": 1000 * pct(r.latencies, 0.99),
        "ttft_p99_ms": 1000 * pct(r.first_tokens, 0.99) if r.first_tokens else float("inf"),
        "errors": r.errors,
        "cpu_per_1k": r.cpu / max(1, r.tokens) * 1000,
        "updates_per_1k": r.updates / max(1, r.tokens) * 1000,
    }


def fmt(x: float) -> str:
    return "-" if x != x else ("inf" if x == float("inf") else f"{x:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller scenarios, about a minute")
    parser.add_argument(
        "--apps",
        default="ours,baseline,raw",
        help="which apps to run: ours, ours-N (`--replicas N` behind HAProxy), baseline, raw (the raw relay, the limit)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--scenario", help="an ad-hoc scenario instead: USERS,TOKENS,RATE,ARRIVAL_SECONDS")
    parser.add_argument("--profile", help="record the app with py-spy into this folder (flame graphs)")
    args = parser.parse_args()
    scenarios = QUICK if args.quick else SCENARIOS
    if args.scenario:
        users, tokens, rate, arrival = args.scenario.split(",")
        scenarios = [
            Scenario(
                f"custom: {users} users over {arrival} s, {tokens} tok at {rate}/s",
                int(users),
                int(tokens),
                float(rate),
                float(arrival),
            )
        ]
    if args.only:
        scenarios = [sc for sc in scenarios if args.only in sc.name]
    server_port = free_port()
    server_url = f"http://127.0.0.1:{server_port}"
    server = start(
        [sys.executable, "tests/scripted_ollama.py", "--port", str(server_port)], {}, server_url + "/api/version"
    )
    apps = {
        "ours": (
            [sys.executable, os.environ.get("BENCH_APP", "app.py")],
            {"OLLAMA_HOST": server_url, "BACKEND": "ollama", "MODELS": "bench,bench-2,bench-3,bench-4"},
        ),
        "baseline": ([sys.executable, "bench/baseline_app.py"], {"OLLAMA_HOST": server_url, "MODELS": "bench"}),
        "raw": ([sys.executable, "bench/raw_relay.py"], {"OLLAMA_HOST": server_url}),
    }
    for name in args.apps.split(","):  # ours-2: `python app.py --replicas 2` behind HAProxy
        if name.startswith("ours-"):
            cmd, env = apps["ours"]
            apps[name] = ([*cmd, "--replicas", name.split("-", 1)[1]], env)
    results: dict[str, dict[str, dict]] = {}
    try:
        for number, sc in enumerate(scenarios):
            for name in args.apps.split(","):
                if sc.models > 1 and name != "ours":
                    continue  # neither the lessons' app nor the raw relay compares models
                cmd, env = apps[name]
                port = free_port()
                proc = start(
                    [*cmd, "--port", str(port)],
                    {**env, "GRADIO_ANALYTICS_ENABLED": "False"},
                    f"http://127.0.0.1:{port}",
                )
                spy = None
                if args.profile:
                    Path(args.profile).mkdir(parents=True, exist_ok=True)
                    out = Path(args.profile) / f"{name}-{number}.txt"
                    spy = subprocess.Popen(
                        [
                            str(Path(sys.executable).with_name("py-spy")),
                            "record",
                            "--format",
                            "raw",
                            "-o",
                            str(out),
                            "--pid",
                            str(proc.pid),
                            "--nonblocking",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                try:
                    r = asyncio.run(
                        run_scenario(
                            f"http://127.0.0.1:{port}", server_url, proc.pid, f"{name}{number}", sc, raw=name == "raw"
                        )
                    )
                finally:
                    if spy is not None:
                        spy.send_signal(2)
                        spy.wait(30)
                    stop(proc)
                stats = row(name, r)
                if r.segment_latency:
                    stats["first_1k_p99_ms"], stats["last_1k_p99_ms"] = (1000 * x for x in r.segment_latency)
                    stats["first_1k_cpu_per_s"], stats["last_1k_cpu_per_s"] = r.segment_cpu
                results.setdefault(sc.name, {})[name] = stats
                print(f"{sc.name:<40} {name:<9} " + "  ".join(f"{k}={fmt(v)}" for k, v in stats.items()), flush=True)
                if spy is not None:
                    print(f"\nWhere {name}'s CPU went ({out}):\n{breakdown_table(out, r.cpu, r.updates, r.tokens)}\n")
    finally:
        print(
            f"scripted server CPU: {cpu_seconds(server.pid):.1f} s; driver CPU: {time.process_time():.1f} s", flush=True
        )
        stop(server)
    print()
    print("| scenario | app | token p50 ms | token p99 ms | first token p99 ms | errors | app CPU s / 1000 tok |")
    print("|---|---|---|---|---|---|---|")
    for sc_name, by_app in results.items():
        for name, s in by_app.items():
            print(
                f"| {sc_name} | {name} | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} | {fmt(s['ttft_p99_ms'])} | {s['errors']} | {fmt(s['cpu_per_1k'])} |"
            )
        if "ours" in by_app and "baseline" in by_app:
            o, b = by_app["ours"], by_app["baseline"]
            ratios = [b[k] / o[k] if o[k] else float("nan") for k in ("p50_ms", "p99_ms", "ttft_p99_ms", "cpu_per_1k")]
            print(
                f"| {sc_name} | baseline ÷ ours | {fmt(ratios[0])}x | {fmt(ratios[1])}x | {fmt(ratios[2])}x | | {fmt(ratios[3])}x |"
            )
        for name in by_app:
            if name.startswith("ours-") and "ours" in by_app:
                o, m = by_app["ours"], by_app[name]
                ratios = [
                    o[k] / m[k] if m[k] else float("nan") for k in ("p50_ms", "p99_ms", "ttft_p99_ms", "cpu_per_1k")
                ]
                print(
                    f"| {sc_name} | one process ÷ {name} | {fmt(ratios[0])}x | {fmt(ratios[1])}x | {fmt(ratios[2])}x | | {fmt(ratios[3])}x |"
                )
        if "ours" in by_app and "raw" in by_app:
            o, r = by_app["ours"], by_app["raw"]
            ratios = [o[k] / r[k] if r[k] else float("nan") for k in ("p50_ms", "p99_ms", "ttft_p99_ms", "cpu_per_1k")]
            print(
                f"| {sc_name} | ours ÷ raw relay | {fmt(ratios[0])}x | {fmt(ratios[1])}x | {fmt(ratios[2])}x | | {fmt(ratios[3])}x |"
            )
        for name, s in by_app.items():
            if "first_1k_p99_ms" in s:
                print(
                    f"| {sc_name} | {name}: first vs last 1000 tokens | p99 {fmt(s['first_1k_p99_ms'])} vs {fmt(s['last_1k_p99_ms'])} ms | "
                    f"CPU {fmt(s['first_1k_cpu_per_s'])} vs {fmt(s['last_1k_cpu_per_s'])} s/s | | | |"
                )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
