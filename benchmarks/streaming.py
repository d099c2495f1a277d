"""The streaming phase of `make bench`: time to first byte through InvokeEndpointWithResponseStream.

A model server that streams TOKENS tokens GAP_MS apart (chunked, as a streaming container
answers) sits behind two endpoints: `bench-stream` (production only) and `bench-stream-shadow`
(the same production plus a 100% shadow to a slower streaming model, SHADOW_GAP_MS apart). Rows:
- direct: straight to the model server (its own first byte and last byte);
- stream: InvokeEndpointWithResponseStream on `bench-stream`; first byte = first PayloadPart;
- whole: InvokeEndpoint on the same endpoint, which answers only once the model has finished;
- stream + shadow: InvokeEndpointWithResponseStream on `bench-stream-shadow`.
wrk cannot read event streams, so a small asyncio client measures: CONNECTIONS keep-alive
connections, each sending requests one after another, recording when the first body byte
(for a stream: the whole first event, which is one HTTP chunk) and the last arrived.

Also runnable alone as the model server: `python benchmarks/streaming.py serve --port P
--tokens 10 --gap-ms 5`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import shadowlabctl
from processes import Cores, Supervisor, free_port

HERE = Path(__file__).resolve().parent
TOKENS = 10
GAP_MS = 5.0
SHADOW_GAP_MS = 20.0
CONNECTIONS = 4
BODY = b'{"prompt": "hello"}'


# -- the streaming model server ------------------------------------------------------------
async def _serve_model(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gap_s: float
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if head.startswith(b"GET"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                continue
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            for i in range(TOKENS):
                if i:
                    await asyncio.sleep(gap_s)
                token = b"tok%d " % i
                writer.write(b"%x\r\n%s\r\n" % (len(token), token))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def serve(port: int, gap_ms: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: _serve_model(r, w, gap_ms / 1000.0), "127.0.0.1", port
    )
    async with server:
        await server.serve_forever()


# -- the client ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    first_s: float
    last_s: float


async def _read_response(reader: asyncio.StreamReader) -> tuple[float, int]:
    """Read one response; (time its first body bytes were complete, body bytes)."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {head[:200]!r}")
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        first = 0.0
        size = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            n = int(line.strip(), 16)
            await reader.readexactly(n + 2)
            if n == 0:
                return first, size
            if not first:
                first = time.perf_counter()
            size += n
    length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    await reader.readexactly(length)
    return time.perf_counter(), length


async def _one_connection(url_path: str, port: int, requests: int, out: list[Timing]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (url_path.encode(), len(BODY), BODY)
    )
    try:
        for _ in range(requests):
            sent = time.perf_counter()
            writer.write(request)
            first, _ = await _read_response(reader)
            out.append(Timing(first - sent, time.perf_counter() - sent))
    finally:
        writer.close()


async def _measure(url_path: str, port: int, requests: int) -> list[Timing]:
    out: list[Timing] = []
    per = max(1, requests // CONNECTIONS)
    await asyncio.gather(*(_one_connection(url_path, port, per, out) for _ in range(CONNECTIONS)))
    return out


# -- the phase ---------------------------------------------------------------------------------
ROWS = ("direct", "stream", "whole", "stream + shadow")


def _target(row: str, model_port: int, shadowlab_port: int) -> tuple[str, int]:
    if row == "direct":
        return "/invocations", model_port
    endpoint = "bench-stream-shadow" if row == "stream + shadow" else "bench-stream"
    op = "invocations" if row == "whole" else "invocations-response-stream"
    return f"/endpoints/{endpoint}/{op}", shadowlab_port


def _create_endpoints(shadowlab_port: int, production: int, shadow: int) -> None:
    sm = shadowlabctl._client(shadowlab_port)
    for model, upstream in (("stream-prod", production), ("stream-shadow", shadow)):
        sm.create_model(
            ModelName=model,
            ExecutionRoleArn=shadowlabctl.ROLE,
            PrimaryContainer={
                "Image": "external",
                "Environment": {"SHADOWLAB_UPSTREAM_URL": f"http://127.0.0.1:{upstream}"},
            },
        )
    variant = {
        "InitialInstanceCount": 1,
        "InstanceType": shadowlabctl.INSTANCE,
        "InitialVariantWeight": 1.0,
    }
    for name, shadowed in (("bench-stream", False), ("bench-stream-shadow", True)):
        config: dict[str, object] = {
            "EndpointConfigName": name,
            "ProductionVariants": [{**variant, "VariantName": "p", "ModelName": "stream-prod"}],
        }
        if shadowed:
            config["ShadowProductionVariants"] = [
                {**variant, "VariantName": "s", "ModelName": "stream-shadow"}
            ]
        sm.create_endpoint_config(**config)
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    deadline = time.monotonic() + 60
    for name in ("bench-stream", "bench-stream-shadow"):
        while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "InService":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not InService within 60 s")
            time.sleep(0.1)


def run_phase(
    supervisor: Supervisor, cores: Cores, shadowlab_port: int, rounds: int, requests: int
) -> str:
    """Start the streaming model servers, measure every row `rounds` times (the order
    alternating), and return the phase's markdown section."""
    ports = {"production": free_port(), "shadow": free_port()}
    gaps = {"production": GAP_MS, "shadow": SHADOW_GAP_MS}
    for name, port in ports.items():
        argv = [sys.executable, str(HERE / "streaming.py"), "serve", "--port", str(port)]
        argv += ["--gap-ms", str(gaps[name])]
        supervisor.start(f"stream-model-{name}", argv, cpus=cores.load, port=port)
    _create_endpoints(shadowlab_port, ports["production"], ports["shadow"])
    results: dict[str, list[Timing]] = {row: [] for row in ROWS}
    for row in ROWS:  # warm-up: connections, pools, the shadow's admission limit
        path, port = _target(row, ports["production"], shadowlab_port)
        asyncio.run(_measure(path, port, CONNECTIONS * 5))
    for round_no in range(1, rounds + 1):
        order = ROWS if round_no % 2 else tuple(reversed(ROWS))
        for row in order:
            path, port = _target(row, ports["production"], shadowlab_port)
            timings = asyncio.run(_measure(path, port, requests))
            results[row] += timings
            print(
                f"  round {round_no}  streaming  {row:<16} TTFB p50 "
                f"{_pct(timings, 50, True):6.2f} ms  last byte p50 {_pct(timings, 50, False):6.2f}",
                flush=True,
            )
    stats = shadowlabctl.stats(shadowlab_port)
    copies = shadowlabctl.shadow_counters(stats, "bench-stream-shadow")
    return render(results, copies)


def _pct(timings: list[Timing], q: int, first: bool) -> float:
    values = sorted((t.first_s if first else t.last_s) * 1000.0 for t in timings)
    if not values:
        return float("nan")
    if q == 50:
        return statistics.median(values)
    return values[min(len(values) - 1, int(len(values) * q / 100))]


def render(results: dict[str, list[Timing]], copies: dict[str, int]) -> str:
    lines = [
        "## Streaming: time to first byte",
        "",
        f"A model streaming {TOKENS} tokens {GAP_MS:g} ms apart; {CONNECTIONS} keep-alive "
        "connections, requests one after another on each; first byte: the first PayloadPart "
        "(for InvokeEndpoint, the first body byte, which comes with the last).",
        "",
        "| row | requests | first byte p50 ms | p99 ms | last byte p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        timings = results[row]
        lines.append(
            f"| {row} | {len(timings)} | {_pct(timings, 50, True):.2f} | "
            f"{_pct(timings, 99, True):.2f} | {_pct(timings, 50, False):.2f} | "
            f"{_pct(timings, 99, False):.2f} |"
        )
    if copies:
        lines += [
            "",
            f"stream + shadow: the shadow ({TOKENS} tokens {SHADOW_GAP_MS:g} ms apart) got "
            f"{copies.get('sent', 0)} copies, {copies.get('completed', 0)} read to their last "
            f"byte, {copies.get('shed', 0)} shed, {copies.get('timeouts', 0)} timed out.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    model = sub.add_parser("serve", help="run the streaming model server")
    model.add_argument("--port", type=int, required=True)
    model.add_argument("--gap-ms", type=float, default=GAP_MS)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.gap_ms))


if __name__ == "__main__":
    main()
