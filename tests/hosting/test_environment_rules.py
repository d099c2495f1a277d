"""Container Environment rules (domain/environment.py) and where upstreams may point."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from shadowlab.domain.environment import (
    DEFAULT_UPSTREAM_HOSTS,
    UpstreamHosts,
    environment_problem,
    refused_variables,
)
from shadowlab.hosting.supervisor import VariantInstances, WorkerSpec, WorkerStartError
from shadowlab.hosting.upstream import UpstreamError, parse_upstream_url

LOOPBACK = UpstreamHosts.parse(DEFAULT_UPSTREAM_HOSTS)


def test_variables_that_change_how_code_loads_are_refused() -> None:
    environment = {
        "PERL5OPT": "-Mx",
        "MODEL_NAME": "iris",
        "BROWSER": "sh -c id",
        "PYTHONWARNINGS": "ignore::evil.Warning",
        "LD_PRELOAD": "/tmp/x.so",
        "LD_ANYTHING": "1",
        "MALLOC_CHECK_": "3",
        "BASH_FUNC_ls%%": "() { id; }",
        "PYTHONPATH": "/tmp",
        "SAGEMAKER_PROGRAM": "inference.py",
        "OMP_NUM_THREADS": "1",
    }
    refused = refused_variables(environment)
    assert refused == [
        "PERL5OPT",
        "BROWSER",
        "PYTHONWARNINGS",
        "LD_PRELOAD",
        "LD_ANYTHING",
        "MALLOC_CHECK_",
        "BASH_FUNC_ls%%",
        "PYTHONPATH",
    ]
    assert environment_problem({"PERL5OPT": "x", "LD_PRELOAD": "y"}, LOOPBACK) == (
        "Environment variable(s) PERL5OPT, LD_PRELOAD are not allowed: they change how programs "
        "load code."
    )
    ordinary = {"SAGEMAKER_PROGRAM": "inference.py", "MODEL_GREETING": "hi", "PATH": "/bin"}
    assert environment_problem(ordinary, LOOPBACK) is None
    assert environment_problem(None, LOOPBACK) is None


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("10.255.255.1", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("0.0.0.0", False),  # reaches loopback on Linux, but is not on the list as written
        ("127.1", False),  # a resolver would say loopback; only plain addresses match
        ("2130706433", False),
        ("::ffff:127.0.0.1", False),
        ("localhost.", False),
        ("example.com", False),
    ],
)
def test_default_allow_list_is_loopback(host: str, allowed: bool) -> None:
    assert LOOPBACK.allows(host) is allowed


def test_configured_allow_lists() -> None:
    hosts = UpstreamHosts.parse(" 10.0.0.0/8, models.internal ,fd00::/8,")
    assert hosts.allows("10.1.2.3") and hosts.allows("models.internal")
    assert hosts.allows("fd00::1") and not hosts.allows("127.0.0.1")
    assert UpstreamHosts.parse("*").allows("anything.example")
    assert not UpstreamHosts.parse("").allows("127.0.0.1")


def test_create_model_time_check_names_the_host_only() -> None:
    problem = environment_problem({"SHADOWLAB_UPSTREAM_URL": "http://10.255.255.1:22"}, LOOPBACK)
    assert problem == (
        "SHADOWLAB_UPSTREAM_URL host '10.255.255.1' is not on this server's upstream allow-list "
        "(setting upstream_hosts, SHADOWLAB_UPSTREAM_HOSTS)."
    )
    assert environment_problem({"SHADOWLAB_UPSTREAM_URL": "http://127.0.0.1:9"}, LOOPBACK) is None
    # Not parseable: left to deployment, which says what is wrong with it.
    assert environment_problem({"SHADOWLAB_UPSTREAM_URL": "http://[::1"}, LOOPBACK) is None


def test_parse_refuses_hosts_off_the_list() -> None:
    assert parse_upstream_url("http://127.0.0.1:8080", LOOPBACK) == ("127.0.0.1", 8080)
    with pytest.raises(UpstreamError, match="not on this server's upstream allow-list"):
        parse_upstream_url("http://10.255.255.1:8080", LOOPBACK)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_upstream_is_never_contacted(tmp_path: Path) -> None:
    """Open and closed ports of a host off the list fail alike, at once, and without a
    connection attempt; the same ports on an allowed host behave as before."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        open_port = listening.getsockname()[1]
        closed_port = _closed_port()
        only_other = UpstreamHosts.parse("127.0.0.2")

        async def failure(port: int, hosts: UpstreamHosts) -> str:
            url = f"http://127.0.0.1:{port}"
            spec = WorkerSpec(tmp_path, {"SHADOWLAB_UPSTREAM_URL": url}, tmp_path / "w.log")
            variant = VariantInstances(spec, 1, lambda _: None, upstream_hosts=hosts)
            with pytest.raises(WorkerStartError) as caught:
                await variant.start()
            return caught.value.reason

        async def scenario() -> None:
            started = time.monotonic()
            refused = {await failure(port, only_other) for port in (open_port, closed_port)}
            assert time.monotonic() - started < 1.0
            assert refused == {
                "SHADOWLAB_UPSTREAM_URL host '127.0.0.1' is not on this server's upstream "
                "allow-list (setting upstream_hosts, SHADOWLAB_UPSTREAM_HOSTS)."
            }
            listening.setblocking(False)
            with pytest.raises(BlockingIOError):
                listening.accept()  # nobody connected to the open port
            # Allowed: today's behaviour (a closed port says so).
            assert "did not answer /ping" in await failure(closed_port, LOOPBACK)

        asyncio.run(scenario())
