"""Worker processes under supervision: start, fail, crash and restart, scale, upstream."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import uvloop

from shadowlab.hosting.supervisor import (
    Address,
    VariantInstances,
    WorkerProcess,
    WorkerSpec,
    WorkerStartError,
)
from tests.hosting.modelfiles import (
    ECHO_INFERENCE,
    FAILING_INFERENCE,
    code_only_model_dir,
    request,
)

# The app runs on uvloop; plain asyncio must work too (tests, embedding).
RUNNERS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


@pytest.fixture(params=sorted(RUNNERS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    return RUNNERS[request.param]


@pytest.fixture
def spec(tmp_path: Path) -> WorkerSpec:
    model_dir = code_only_model_dir(tmp_path / "model", ECHO_INFERENCE)
    return WorkerSpec(model_dir, {"MODEL_GREETING": "hi"}, tmp_path / "logs" / "worker.log")


async def invoke(address: Address, body: bytes = b"x") -> tuple[int, bytes]:
    status, _, answer = await asyncio.to_thread(
        request, address[1], "POST", "/invocations", body, {"Content-Type": "text/plain"}
    )
    return status, answer


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_worker_process_starts_serves_and_stops(
    spec: WorkerSpec, run: Callable[[Awaitable[None]], None]
) -> None:
    async def scenario() -> None:
        worker = WorkerProcess(spec)
        await worker.start()
        try:
            assert worker.alive and worker.pid is not None
            assert worker.address[0] == "127.0.0.1"
            status, answer = await invoke(worker.address, b"hello")
            assert status == 200 and answer == b"pid=%d body=hello" % worker.pid
        finally:
            code = await worker.stop(grace=5)
        assert code == 0 and not worker.alive

    run(scenario())


def test_load_failure_raises_with_the_workers_own_error(tmp_path: Path) -> None:
    model_dir = code_only_model_dir(tmp_path / "model", FAILING_INFERENCE)
    spec = WorkerSpec(model_dir, {}, tmp_path / "worker.log")

    async def scenario() -> None:
        worker = WorkerProcess(spec)
        with pytest.raises(WorkerStartError) as caught:
            await worker.start()
        assert "weights are corrupt: checksum mismatch" in caught.value.reason
        assert not worker.alive
        # The same for a variant: nothing is left running, nothing was published.
        published: list[list[Address]] = []
        variant = VariantInstances(spec, 2, published.append)
        with pytest.raises(WorkerStartError, match="weights are corrupt"):
            await variant.start()
        assert published == [] and variant.addresses == []
        assert all(not worker.alive for worker in variant.workers)

    uvloop.run(scenario())


def test_a_worker_dying_before_ready_reports_its_log(tmp_path: Path) -> None:
    model_dir = code_only_model_dir(tmp_path / "model", "import os\nos._exit(9)\n")
    spec = WorkerSpec(model_dir, {}, tmp_path / "worker.log")

    async def scenario() -> None:
        with pytest.raises(WorkerStartError, match="exited with code 9 before it was ready"):
            await WorkerProcess(spec).start()

    uvloop.run(scenario())


def test_killed_worker_is_restarted(
    spec: WorkerSpec, run: Callable[[Awaitable[None]], None]
) -> None:
    async def scenario() -> None:
        published: list[list[Address]] = []
        variant = VariantInstances(spec, 1, published.append, drain_grace=0)
        await variant.start()
        try:
            [first] = variant.addresses
            assert published == [[first]]
            old_pid = variant.workers[0].pid
            assert old_pid is not None
            os.kill(old_pid, signal.SIGKILL)
            await eventually(lambda: len(published) >= 3)
            # Out of rotation as soon as it died, back once the replacement answered.
            assert published[1] == []
            [second] = published[2]
            assert variant.addresses == [second] and variant.restarts == 1
            status, answer = await invoke(second)
            new_pid = variant.workers[0].pid
            assert new_pid is not None and new_pid != old_pid
            assert status == 200 and answer.startswith(b"pid=%d " % new_pid)
        finally:
            await variant.stop()
        assert published[-1] == []

    run(scenario())


def test_a_worker_crashing_on_a_request_is_replaced(spec: WorkerSpec) -> None:
    async def scenario() -> None:
        published: list[list[Address]] = []
        variant = VariantInstances(spec, 1, published.append)
        await variant.start()
        try:
            [address] = variant.addresses
            with pytest.raises(ConnectionError):
                await invoke(address, b"die")
            await eventually(lambda: len(variant.addresses) == 1 and variant.restarts == 1)
            assert (await invoke(variant.addresses[0]))[0] == 200
        finally:
            await variant.stop()

    uvloop.run(scenario())


def test_scale_up_and_down(spec: WorkerSpec) -> None:
    async def scenario() -> None:
        published: list[list[Address]] = []
        variant = VariantInstances(spec, 1, published.append, drain_grace=0.2)
        await variant.start()
        try:
            await variant.scale(3)
            assert len(variant.addresses) == 3 and len(set(variant.addresses)) == 3
            assert published[-1] == variant.addresses
            for address in variant.addresses:
                assert (await invoke(address))[0] == 200

            kept, dropped = variant.addresses[:1], variant.addresses[1:]
            dropped_workers = variant.workers[1:]
            scaling = asyncio.create_task(variant.scale(1))
            await eventually(lambda: published[-1] == kept)
            # Removed from rotation first; still answering during the drain grace.
            assert all(worker.alive for worker in dropped_workers)
            assert (await invoke(dropped[0]))[0] == 200
            await scaling
            assert not any(worker.alive for worker in dropped_workers)
            assert variant.addresses == kept and variant.count == 1
        finally:
            await variant.stop()
        assert published[-1] == []

    uvloop.run(scenario())


def test_upstream_url_variant_uses_a_running_server(spec: WorkerSpec, tmp_path: Path) -> None:
    async def scenario() -> None:
        server = WorkerProcess(spec)
        await server.start()
        try:
            host, port = server.address
            upstream = WorkerSpec(
                tmp_path / "unused",
                {"SHADOWLAB_UPSTREAM_URL": f"http://{host}:{port}"},
                spec.log_path,
            )
            published: list[list[Address]] = []
            variant = VariantInstances(upstream, 2, published.append)
            await variant.start()
            assert variant.is_upstream and variant.addresses == [(host, port)]
            assert published == [[(host, port)]] and variant.workers == []
            await variant.scale(4)  # nothing to start: the server scales itself
            assert variant.addresses == [(host, port)] and variant.count == 4
            await variant.stop()
            assert published[-1] == []
        finally:
            await server.stop()

    uvloop.run(scenario())


def test_upstream_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]

    async def scenario() -> None:
        for url, text in [
            (f"http://127.0.0.1:{closed_port}", "did not answer /ping"),
            ("https://example.com", "expected http://host:port"),
            ("http://127.0.0.1:1/prefix", "no path"),
        ]:
            upstream = WorkerSpec(tmp_path, {"SHADOWLAB_UPSTREAM_URL": url}, tmp_path / "w.log")
            variant = VariantInstances(upstream, 1, lambda addresses: None)
            with pytest.raises(WorkerStartError, match=text) as caught:
                await variant.start()
            assert url in caught.value.reason
            assert variant.addresses == []

    uvloop.run(scenario())


def test_failed_restarts_back_off_and_recover(spec: WorkerSpec) -> None:
    inference = spec.model_dir / "code" / "inference.py"

    async def scenario() -> None:
        published: list[list[Address]] = []
        variant = VariantInstances(spec, 1, published.append, max_backoff=0.2)
        await variant.start()
        try:
            # The model breaks underneath a running worker, which then dies.
            inference.write_text(FAILING_INFERENCE)
            pid = variant.workers[0].pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await eventually(lambda: variant.last_error is not None)
            assert "weights are corrupt" in (variant.last_error or "")
            assert variant.addresses == [] and published[-1] == []
            # Fixed again: the next attempt brings the instance back.
            inference.write_text(ECHO_INFERENCE)
            await eventually(lambda: len(variant.addresses) == 1)
            assert variant.last_error is None and variant.restarts == 1
            assert (await invoke(variant.addresses[0]))[0] == 200
        finally:
            await variant.stop()

    uvloop.run(scenario())


def test_restarts_are_bounded_per_window(spec: WorkerSpec) -> None:
    async def scenario() -> None:
        variant = VariantInstances(
            spec, 1, lambda addresses: None, max_restarts_per_minute=1, restart_window=1.0
        )
        await variant.start()
        try:
            loop = asyncio.get_running_loop()
            for expected in (1, 2):
                pid = variant.workers[0].pid
                assert pid is not None
                killed_at = loop.time()
                os.kill(pid, signal.SIGKILL)
                await eventually(lambda: variant.restarts == expected)  # noqa: B023
                took = loop.time() - killed_at
            # The first restart is immediate; the second waits for the window to pass.
            assert took > 0.6, took
        finally:
            await variant.stop()

    uvloop.run(scenario())


# -- SAGEMAKER_MODEL_SERVER_WORKERS: several worker processes per instance ------------------------


def _with_env(spec: WorkerSpec, **environment: str) -> WorkerSpec:
    return WorkerSpec(spec.model_dir, {**spec.environment, **environment}, spec.log_path)


async def _pids_behind(addresses: list[Address]) -> dict[Address, int]:
    """Which process answers at each address, from the echo model's own answer."""
    pids = {}
    for address in addresses:
        status, answer = await invoke(address, b"who")
        assert status == 200, answer
        pids[address] = int(answer.split()[0].removeprefix(b"pid="))
    return pids


def test_model_server_workers_start_several_processes_per_instance(spec: WorkerSpec) -> None:
    async def scenario() -> None:
        published: list[list[Address]] = []
        three = _with_env(spec, SAGEMAKER_MODEL_SERVER_WORKERS="3")
        variant = VariantInstances(three, 1, published.append, drain_grace=0)
        await variant.start()
        try:
            assert variant.count == 1 and variant.instances_in_service == 1
            assert len(variant.workers) == 3 and all(w.alive for w in variant.workers)
            assert len(set(variant.addresses)) == 3 and published == [variant.addresses]
            pids = set((await _pids_behind(variant.addresses)).values())
            assert len(pids) == 3 and pids == {w.pid for w in variant.workers}

            await variant.scale(2)
            assert variant.count == 2 and variant.instances_in_service == 2
            assert len(set(variant.addresses)) == 6 and published[-1] == variant.addresses
            assert len({w.pid for w in variant.workers}) == 6
            assert len(set((await _pids_behind(variant.addresses)).values())) == 6

            before = variant.workers
            await variant.scale(1)
            assert variant.count == 1 and variant.instances_in_service == 1
            assert len(variant.addresses) == 3 and published[-1] == variant.addresses
            assert len(variant.workers) == 3
            assert sum(not w.alive for w in before) == 3  # the three removed were stopped

            # One process of the instance dies: it leaves the list, the others keep serving,
            # and a new process takes its place.
            survivors = variant.addresses
            victim = variant.workers[0]
            assert victim.pid is not None
            old_pids = {w.pid for w in variant.workers}
            published.clear()
            os.kill(victim.pid, signal.SIGKILL)
            await eventually(lambda: variant.restarts == 1 and len(variant.addresses) == 3)
            assert published[0] == [a for a in survivors if a != victim.address]
            assert published[-1] == variant.addresses and variant.instances_in_service == 1
            new_pids = {w.pid for w in variant.workers}
            assert len(new_pids) == 3 and len(new_pids - old_pids) == 1
            assert set((await _pids_behind(variant.addresses)).values()) == new_pids
        finally:
            last = variant.workers
            await variant.stop()
        assert published[-1] == [] and variant.instances_in_service == 0
        assert variant.workers == [] and not any(w.alive for w in before + last)

    uvloop.run(scenario())


def test_invalid_model_server_workers_fail_the_start(spec: WorkerSpec) -> None:
    async def scenario() -> None:
        for value in ("0", "abc", "33", "-1", "2.5", "²", "\uff13"):
            published: list[list[Address]] = []
            bad = _with_env(spec, SAGEMAKER_MODEL_SERVER_WORKERS=value)
            variant = VariantInstances(bad, 1, published.append)
            with pytest.raises(WorkerStartError) as caught:
                await variant.start()
            reason = caught.value.reason
            assert "SAGEMAKER_MODEL_SERVER_WORKERS" in reason and repr(value) in reason
            assert "from 1 to 32" in reason
            assert variant.last_error == reason
            assert variant.workers == [] and variant.addresses == [] and published == []
            assert variant.instances_in_service == 0

    uvloop.run(scenario())


def _timed_burst(addresses: list[Address], per_address: int, body: bytes) -> float:
    """Seconds for `per_address` concurrent requests to each address, all at once."""
    targets = [address for _ in range(per_address) for address in addresses]
    with ThreadPoolExecutor(len(targets)) as pool:
        started = time.perf_counter()
        futures = [
            pool.submit(request, port, "POST", "/invocations", body, {"Content-Type": "text/plain"})
            for _, port in targets
        ]
        answers = [future.result(30) for future in futures]
        elapsed = time.perf_counter() - started
    assert [status for status, _, _ in answers] == [200] * len(targets)
    # Every process served its share (the echo model answers with its pid).
    served = Counter(answer.split()[0] for _, _, answer in answers)
    assert sorted(served.values()) == [per_address] * len(addresses)
    return elapsed


def test_more_processes_per_instance_serve_more_at_once(spec: WorkerSpec) -> None:
    # A sleep-bound model: one process runs its predictions one at a time, three run three.
    body, requests, sleep = b"sleep 0.05", 30, 0.05

    async def scenario() -> None:
        one = VariantInstances(spec, 1, lambda addresses: None)
        three = VariantInstances(
            _with_env(spec, SAGEMAKER_MODEL_SERVER_WORKERS="3"), 1, lambda addresses: None
        )
        await asyncio.gather(one.start(), three.start())
        try:
            assert len(one.addresses) == 1 and len(three.addresses) == 3  # the default is 1
            alone = await asyncio.to_thread(_timed_burst, one.addresses, requests, body)
            shared = await asyncio.to_thread(_timed_burst, three.addresses, requests // 3, body)
        finally:
            await asyncio.gather(one.stop(), three.stop())
        assert alone >= requests * sleep  # one process serializes them
        assert alone >= 2 * shared, (alone, shared)

    uvloop.run(scenario())
