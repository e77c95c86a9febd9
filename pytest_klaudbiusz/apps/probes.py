"""HTTP probes of a running app: health polling and data endpoints."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_klaudbiusz.apps.plan import DataEndpoint

_ROW_KEYS = ("data", "rows", "results", "items", "result")


@dataclass
class Response:
    status: int | None  # None: no HTTP answer at all
    body: bytes = b""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def request(port: int, method: str, path: str, timeout: float) -> Response:
    conn = http.client.HTTPConnection("localhost", port, timeout=timeout)
    try:
        body = b"{}" if method == "POST" else None
        headers = {"Content-Type": "application/json"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.read(1 << 20))
    except (OSError, http.client.HTTPException) as exc:
        return Response(None, error=type(exc).__name__)
    finally:
        conn.close()


@dataclass
class Health:
    healthy: bool
    path: str | None = None
    seconds: float = 0.0
    last: str = "no answer"


def wait_healthy(
    port: int, paths: tuple[str, ...], timeout: float, alive: Callable[[], bool]
) -> Health:
    """Poll ``paths`` until one answers 2xx, the process dies, or time runs out.

    The paths are tried in order only once the server answers HTTP at all, so the
    path that wins does not depend on when the server came up.
    """
    start = time.monotonic()
    deadline = start + timeout
    last = "no answer"
    while True:
        for path in paths:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Health(False, seconds=timeout, last=last)
            resp = request(port, "GET", path, min(2.0, remaining))
            if resp.ok:
                return Health(True, path, time.monotonic() - start)
            last = f"GET {path}: {resp.status or resp.error}"
            if resp.status is None:
                break  # not listening yet: the other paths would not answer either
        if not alive():
            return Health(False, seconds=time.monotonic() - start, last="process exited")
        time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))  # refusals cost < 1 ms


def unwrap_trpc(value: Any) -> Any:
    """``{"result": {"data": X}}`` or ``{"result": {"data": {"json": X}}}`` -> X."""
    if (
        isinstance(value, dict)
        and isinstance(value.get("result"), dict)
        and "data" in value["result"]
    ):
        value = value["result"]["data"]
        if isinstance(value, dict) and set(value) <= {"json", "meta"} and "json" in value:
            value = value["json"]
    return value


def count_rows(value: Any) -> int:
    """Rows in a data endpoint's JSON: a list's length, or the rows under a known key.

    An object of plain values (an aggregate such as ``{"total": 5}``) is one row, an
    object of sections (``{"kpis": {...}, "trend": [...]}``) has its largest section's
    rows; an error object, ``{"data": null}`` and an object of nulls have none.
    """
    value = unwrap_trpc(value)
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        if "error" in value or "errors" in value:
            return 0
        for key in _ROW_KEYS:
            if key in value and (value[key] is None or isinstance(value[key], list | dict)):
                return count_rows(value[key])
        plain = any(  # an all-zero stats object is no row of data
            v not in (None, 0, False, "") and not isinstance(v, list | dict) for v in value.values()
        )
        nested = [count_rows(v) for v in value.values() if isinstance(v, list | dict)]
        return max([int(plain), *nested])
    return 0


@dataclass
class DataCheck:
    endpoint: DataEndpoint
    status: int | None
    is_json: bool
    rows: int
    error: str = ""

    @property
    def connected(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.is_json

    def summary(self) -> str:
        """One line a user can act on: the request and what came back."""
        request = f"{self.endpoint.method} {self.endpoint.path}"
        if self.status is None:
            return f"{request}: no answer ({self.error or 'connection failed'})"
        if not self.is_json:
            return f"{request}: answered {self.status}, not JSON"
        return f"{request}: answered {self.status}, {self.rows} rows"

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.endpoint.method,
            "path": self.endpoint.path,
            "status": self.status,
            "json": self.is_json,
            "rows": self.rows,
            **({"error": self.error} if self.error else {}),
        }


def check_endpoint(port: int, endpoint: DataEndpoint, timeout: float) -> DataCheck:
    resp = request(port, endpoint.method, endpoint.path, timeout)
    try:
        value = json.loads(resp.body) if resp.status is not None else None
        is_json = resp.status is not None
    except ValueError:
        value, is_json = None, False
    return DataCheck(
        endpoint, resp.status, is_json, count_rows(value) if is_json else 0, resp.error
    )
