"""Which transport carries a request: ours, or httpx's when the environment names a proxy.

We do not speak to proxies; :func:`proxy_configured` says when httpx would use one, so the
client hands those origins to an ``httpx.AsyncClient`` that honours the environment.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

import httpx

__all__ = ["proxy_configured"]


def proxy_configured(url: httpx.URL, env: Mapping[str, str]) -> bool:
    """Whether ``httpx.AsyncClient(trust_env=True)`` would send ``url`` through a proxy.

    The caller falls back to httpx's own transport when this is true, so it mirrors httpx
    0.28 exactly rather than any other reading of these variables: the environment is
    read as ``urllib.request.getproxies_environment`` reads it (``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``; lowercase names win; an empty lowercase
    value unsets; ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set, as under CGI),
    then turned into httpx's mount patterns and matched most specific first. So in
    ``NO_PROXY``: ``*`` disables proxies; ``example.com`` covers it and its subdomains;
    ``.example.com`` only subdomains; IP addresses and ``localhost`` match exactly (no
    CIDR ranges); ``http://example.com`` matches that scheme and host only.
    """
    proxies = _env_proxies(env)
    mounts: dict[str, bool] = {}  # httpx mount pattern -> goes through a proxy
    for scheme in ("http", "https", "all"):
        if proxies.get(scheme):
            mounts[f"{scheme}://"] = True
    for entry in proxies.get("no", "").split(","):
        host = entry.strip()
        if host == "*":
            return False
        if not host:
            continue
        if "://" in host:
            mounts[host] = False
        elif _is_ip_literal(host, 4):
            mounts[f"all://{host}"] = False
        elif _is_ip_literal(host, 6):
            mounts[f"all://[{host}]"] = False
        elif host.lower() == "localhost":
            mounts[f"all://{host}"] = False
        else:
            mounts[f"all://*{host}"] = False
    patterns = sorted((_MountPattern(key), proxied) for key, proxied in mounts.items())
    for pattern, proxied in patterns:
        if pattern.matches(url):
            return proxied
    return False


def _env_proxies(env: Mapping[str, str]) -> dict[str, str]:
    proxies: dict[str, str] = {}
    for name, value in env.items():
        lname = name.lower()
        if value and lname.endswith("_proxy"):
            proxies[lname[:-6]] = value
    if "REQUEST_METHOD" in env:
        proxies.pop("http", None)
    for name, value in env.items():
        if name.endswith("_proxy"):
            lname = name.lower()
            if value:
                proxies[lname[:-6]] = value
            else:
                proxies.pop(lname[:-6], None)
    return proxies


def _is_ip_literal(text: str, version: int) -> bool:
    address = text.split("/")[0]
    try:
        if version == 4:
            ipaddress.IPv4Address(address)
        else:
            ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


class _MountPattern:
    """httpx's ``URLPattern`` (a private class there), re-stated: scheme, host, port."""

    def __init__(self, pattern: str) -> None:
        url = httpx.URL(pattern)
        self.scheme = "" if url.scheme == "all" else url.scheme
        self.host = "" if url.host == "*" else url.host
        self.port = url.port
        if not self.host:
            self.regex: re.Pattern[str] | None = None
        elif self.host.startswith("*."):
            self.regex = re.compile(f"^.+\\.{re.escape(self.host[2:])}$")
        elif self.host.startswith("*"):
            self.regex = re.compile(f"^(.+\\.)?{re.escape(self.host[1:])}$")
        else:
            self.regex = re.compile(f"^{re.escape(self.host)}$")

    def matches(self, url: httpx.URL) -> bool:
        if self.scheme and self.scheme != url.scheme:
            return False
        if self.regex is not None and not self.regex.match(url.host):
            return False
        return self.port is None or self.port == url.port

    def priority(self) -> tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def __lt__(self, other: _MountPattern) -> bool:
        return self.priority() < other.priority()
