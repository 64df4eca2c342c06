"""Which Host headers the HTTP server serves (the DNS-rebinding guard)."""

from __future__ import annotations

import pytest

from dicomnode.api.browser import HostPolicy, default_hosts


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("127.0.0.1:8080", True),
        ("127.0.0.1", True),
        ("LOCALHOST:1", True),
        ("[::1]:8080", True),
        ("[::1]", True),
        ("::1", True),
        ("node.example:8443", True),
        ("node.example:8080", False),  # that name only on its port
        ("node.example", False),
        ("evil.example", False),
        ("evil.example:8080", False),
        ("127.0.0.1.evil.example", False),
        ("[::2]:8080", False),
        ("", False),
        (None, False),
    ],
)
def test_host_policy(host, served):
    policy = HostPolicy([*default_hosts("127.0.0.1"), "node.example:8443"])
    assert policy.allows(host) is served


def test_wildcard_bind_serves_this_machine_and_star_serves_any():
    assert "0.0.0.0" not in default_hosts("0.0.0.0")
    assert {"localhost", "127.0.0.1", "::1"} <= set(default_hosts("0.0.0.0"))
    assert HostPolicy(["*"]).allows("anything.example:1")
