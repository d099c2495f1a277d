"""Rules for a container's `Environment`: what it may not set, and where an upstream may point.

A worker runs the model's code anyway (inference.py is code, as on SageMaker), but the
Environment must not be a second way in that bypasses what hosting sets up before the model
loads (parent-death signal, resource limits, a clean environment), nor one that reaches
programs that never meant to run user code: one CreateModel with PERL5OPT, BROWSER and
PYTHONWARNINGS ran a shell command on the host. Variables that change how interpreters or the
dynamic loader find and load code are therefore refused at CreateModel, and dropped again when a
worker starts (a model stored before this check existed must not slip through).

`SHADOWLAB_UPSTREAM_URL` makes the server connect where a caller says; the allow-list keeps that
to hosts the operator named, so the server cannot be used to probe the network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_UPSTREAM_HOSTS",
    "UPSTREAM_URL_VARIABLE",
    "UpstreamHosts",
    "environment_problem",
    "is_refused",
    "refused_message",
    "refused_variables",
]

UPSTREAM_URL_VARIABLE = "SHADOWLAB_UPSTREAM_URL"
DEFAULT_UPSTREAM_HOSTS = "127.0.0.0/8,::1,localhost"

# Exact names. PYTHONPATH is refused too although some SageMaker containers document it: it
# puts arbitrary directories ahead of the worker's own modules (shadowlab, uvloop, even the
# standard library) before the worker has set its limits, and the built-in runtime already
# puts code/ on sys.path as the inference toolkit does, so models importing their siblings or a
# vendored package under code/ do not need it.
REFUSED_NAMES = frozenset(
    {
        # Python: startup files, import paths, modules imported by name, hooks run on events.
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONINSPECT",
        "PYTHONWARNINGS",  # "action:message:category" imports the category's module
        "PYTHONBREAKPOINT",
        "PYTHONUSERBASE",  # its site-packages' .pth files run at startup
        "PYTHONPLATLIBDIR",
        "PYTHONPYCACHEPREFIX",  # bytecode read from a directory the caller chooses
        "PYTHONEXECUTABLE",
        # Other interpreters a model's code or a library might start.
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "PERL5DB",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "LUA_INIT",
        # Commands run on behalf of a program (webbrowser runs $BROWSER; git and ssh askpass).
        "BROWSER",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "GIT_EXEC_PATH",
        "GIT_EXTERNAL_DIFF",
        # Shells: files sourced at start, code run per prompt or trace line, word splitting.
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "IFS",
        # The C library and OpenSSL loading modules, locales and tunables from given paths.
        "GCONV_PATH",
        "GETCONF_DIR",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RESOLV_HOST_CONF",
        "GLIBC_TUNABLES",
        "OPENSSL_CONF",
        "OPENSSL_ENGINES",
        "OPENSSL_MODULES",
    }
)
# Whole families: the dynamic loader (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...), glibc's
# malloc hooks and checks, bash's exported functions, git's injected configuration.
REFUSED_PREFIXES = ("LD_", "MALLOC_", "BASH_FUNC_", "GIT_CONFIG")


def is_refused(name: str) -> bool:
    return name in REFUSED_NAMES or name.startswith(REFUSED_PREFIXES)


def refused_variables(environment: Mapping[str, object] | None) -> list[str]:
    """The refused names in `environment`, in its order."""
    return [name for name in (environment or {}) if is_refused(name)]


def refused_message(names: Iterable[str]) -> str:
    return (
        f"Environment variable(s) {', '.join(names)} are not allowed: they change how programs "
        "load code."
    )


@dataclass(frozen=True)
class UpstreamHosts:
    """Where `SHADOWLAB_UPSTREAM_URL` may point: IP networks (an address alone is a network of
    one) and host names matched exactly; `*` allows any host. A name is trusted as the operator
    listed it; an address is matched as written, so `127.1` or `2130706433` are not loopback
    here although a resolver might say so: only what is plainly on the list passes."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    names: frozenset[str]
    any_host: bool = False
    spec: str = DEFAULT_UPSTREAM_HOSTS

    @classmethod
    def parse(cls, spec: str) -> UpstreamHosts:
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        names: set[str] = set()
        any_host = False
        for entry in (part.strip() for part in spec.split(",")):
            if not entry:
                continue
            if entry == "*":
                any_host = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry.lower())
        return cls(tuple(networks), frozenset(names), any_host, spec)

    def allows(self, host: str) -> bool:
        if self.any_host:
            return True
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return host.lower() in self.names
        return any(address in network for network in self.networks)

    def refusal(self, host: str) -> str:
        """Says only that the host is not allowed: nothing was tried, so nothing is revealed."""
        return (
            f"{UPSTREAM_URL_VARIABLE} host {host!r} is not on this server's upstream allow-list "
            "(setting upstream_hosts, SHADOWLAB_UPSTREAM_HOSTS)."
        )


def environment_problem(
    environment: Mapping[str, object] | None, upstream_hosts: UpstreamHosts
) -> str | None:
    """Why CreateModel must refuse a container with this Environment, or None.

    An upstream URL that does not parse is left to deployment, which reports it as the
    endpoint's FailureReason; only a parsed host that is not allowed is refused here.
    """
    refused = refused_variables(environment)
    if refused:
        return refused_message(refused)
    url = (environment or {}).get(UPSTREAM_URL_VARIABLE)
    if isinstance(url, str):
        try:
            host = urlsplit(url.strip()).hostname
        except ValueError:
            return None
        if host and not upstream_hosts.allows(host):
            return upstream_hosts.refusal(host)
    return None
