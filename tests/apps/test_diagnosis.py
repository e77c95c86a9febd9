"""What an app's output says about why a stage failed (real installers' messages)."""

from __future__ import annotations

import pytest

from pytest_klaudbiusz.apps.diagnosis import listening_elsewhere, registry_unreachable


@pytest.mark.parametrize(
    ("log", "cause"),
    [
        ("npm error code ECONNREFUSED\nnpm error errno ECONNREFUSED\n", "ECONNREFUSED"),
        ("npm error code ENOTFOUND\nnpm error network request to ... failed", "ENOTFOUND"),
        ("npm ERR! code EAI_AGAIN\n", "EAI_AGAIN"),
        ("error: ConnectionRefused downloading package manifest is-number\n", "ConnectionRefused"),
        ("error: DNSResolveFailed downloading package manifest zod\n", "DNSResolveFailed"),
        # the app's own faults: a package that does not exist, a stale lockfile
        ("error: GET https://registry.npmjs.org/left-pad-zzz - 404\nfailed to resolve\n", None),
        ("error: lockfile had changes, but lockfile is frozen\n", None),
        ("npm error code E404\nnpm error 404 Not Found - GET https://registry/x\n", None),
    ],
)
def test_registry_unreachable(log: str, cause: str | None) -> None:
    assert registry_unreachable(log) == cause


@pytest.mark.parametrize(
    ("log", "other"),
    [
        ("TRPC server listening at port: 2022\n", 2022),
        ("Support tickets dashboard running at http://127.0.0.1:41234\n", 41234),
        ("Server started on http://localhost:3000/\n", 3000),
        ("listening on port 5000 (the given one)\n", None),
        ("listening on port 5000\nlistening at port: 5000\n", None),
        ("connected to the database at 127.0.0.1:5432\n", None),  # not a listening line
        ("", None),
    ],
)
def test_listening_elsewhere(log: str, other: int | None) -> None:
    assert listening_elsewhere(log, 5000) == other
