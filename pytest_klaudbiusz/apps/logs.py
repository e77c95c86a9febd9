"""What an app's commands print, kept bounded however much they print.

A command's stdout and stderr go to a pipe that a thread empties into a
``BoundedLog``: its first ``HEAD_BYTES`` (where the first error usually is), its
last ``TAIL_BYTES`` (exit messages, coverage summaries) and the count of bytes
dropped in between. Memory is bounded by a constant and nothing goes to disk.

Why a drained pipe rather than a log file that is truncated when it grows: a
file can only be checked every so often, so it grows by whatever the app writes
in between (a flood writes hundreds of MB a second), and the bytes written
between reading its end and truncating it are lost uncounted. Here every byte
passes through the thread once: the bounds are exact and the count is right.
The pipe is never waited on (DESIGN.md §7: a backgrounded grandchild holds it
open): a command is finished when its process exits; its output is collected
after the app's processes are killed, which closes every write end, and a
writer that somehow survives only delays that by ``LogPipe.close``'s grace.
A flood is slowed down to the speed of the thread (the pipe is full while the
thread copies): the app's timeouts bound it, as before.
"""

from __future__ import annotations

import os
import select
import threading

HEAD_BYTES = 256 * 1024
TAIL_BYTES = 1024 * 1024
#: The excerpt kept in reports: its first lines, then its last lines, within these sizes.
EXCERPT_HEAD_LINES, EXCERPT_HEAD_BYTES = 10, 1000
EXCERPT_TAIL_LINES, EXCERPT_TAIL_BYTES = 30, 2900
REDACTED = b"[REDACTED]"
#: The longest excerpt: both parts, a redacted cut edge each, the dropped-bytes line.
EXCERPT_CHARS = EXCERPT_HEAD_BYTES + EXCERPT_TAIL_BYTES + 2 * len(REDACTED) + 80


def dropped_marker(count: int) -> str:
    return f"[... {count:,} bytes dropped ...]"


class BoundedLog:
    """The head and the tail of a stream, and how many bytes were dropped between them."""

    def __init__(self, head_size: int = HEAD_BYTES, tail_size: int = TAIL_BYTES) -> None:
        self._head_size, self._tail_size = head_size, tail_size
        self._head = bytearray()
        self._tail = bytearray()  # up to twice tail_size: trimmed in bulk, not per write
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_size - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        self._tail += data
        if len(self._tail) > 2 * self._tail_size:
            del self._tail[: -self._tail_size]

    @property
    def head(self) -> bytes:
        return bytes(self._head)

    @property
    def tail(self) -> bytes:
        return bytes(self._tail[-self._tail_size :])

    @property
    def dropped(self) -> int:
        return self.total - len(self._head) - min(len(self._tail), self._tail_size)

    def text(self) -> str:
        """Everything kept, with the dropped-bytes line where bytes were dropped."""
        parts = [self.head, self.tail]
        if self.dropped:
            parts.insert(1, f"\n{dropped_marker(self.dropped)}\n".encode())
        return b"".join(parts).decode("utf-8", errors="replace")

    def excerpt(self, secrets: tuple[str, ...] = ()) -> str:
        """The first and last lines, at most ``EXCERPT_CHARS``, with secret values redacted.

        The excerpt goes into reports, terminal lines, JUnit XML and MLflow artifacts.
        Secrets are redacted after the excerpt is cut, on bytes, so that the dropped
        count is exact and a secret cut in two (by the excerpt or by the bytes the log
        dropped) is redacted on both sides of the cut. Redacting can lengthen a part (a
        cut edge, a secret shorter than the marker): parts are clamped, which can at
        worst shorten a redaction marker, never uncover a secret.
        """
        whole = not self.dropped
        first = self.head + self.tail if whole else self.head
        head = _first_lines(first, EXCERPT_HEAD_LINES, EXCERPT_HEAD_BYTES)
        last = first[len(head) :] if whole else self.tail
        tail = _last_lines(last, EXCERPT_TAIL_LINES, EXCERPT_TAIL_BYTES)
        omitted = self.total - len(head) - len(tail)
        encoded = tuple(s.encode() for s in secrets if s)
        if not omitted:
            return _decoded(_redacted(head + tail, encoded)).rstrip("\n")[-EXCERPT_CHARS:]
        room = len(REDACTED)
        shown_head = _decoded(_redacted(head, encoded, cut_after=True))
        shown_tail = _decoded(_redacted(tail, encoded, cut_before=True))
        return "\n".join(
            (
                shown_head[: EXCERPT_HEAD_BYTES + room].rstrip("\n"),
                dropped_marker(omitted),
                shown_tail[-EXCERPT_TAIL_BYTES - room :].rstrip("\n"),
            )
        )


def _first_lines(data: bytes, lines: int, size: int) -> bytes:
    data = data[:size]
    end = -1
    for _ in range(lines):
        end = data.find(b"\n", end + 1)
        if end < 0:
            return data
    return data[: end + 1]


def _last_lines(data: bytes, lines: int, size: int) -> bytes:
    data = data[-size:]
    start = len(data.rstrip(b"\n"))
    for _ in range(lines):
        start = data.rfind(b"\n", 0, start)
        if start < 0:
            return data
    return data[start + 1 :]


def _redacted(
    data: bytes, secrets: tuple[bytes, ...], cut_before: bool = False, cut_after: bool = False
) -> bytes:
    """``data`` with every secret replaced, and the piece of one at a cut edge too."""
    for secret in secrets:  # longest first (see secret_values): no partial leftovers
        data = data.replace(secret, REDACTED)
    if cut_after:  # what followed was dropped: data may end with the start of a secret
        piece = max((_ends_with_start_of(data, s) for s in secrets), default=0)
        data = data[: len(data) - piece] + (REDACTED if piece else b"")
    if cut_before:  # what came before was dropped: data may start with the end of a secret
        piece = max((_starts_with_end_of(data, s) for s in secrets), default=0)
        data = (REDACTED if piece else b"") + data[piece:]
    return data


def _ends_with_start_of(data: bytes, secret: bytes) -> int:
    for size in range(min(len(data), len(secret) - 1), 0, -1):
        if data.endswith(secret[:size]):
            return size
    return 0


def _starts_with_end_of(data: bytes, secret: bytes) -> int:
    for size in range(min(len(data), len(secret) - 1), 0, -1):
        if data.startswith(secret[-size:]):
            return size
    return 0


def _decoded(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class LogPipe:
    """A pipe for a command's output, emptied by a thread into ``log``.

    Pass ``write_fd`` as the command's stdout and stderr, then call ``started``
    (which closes this process's copy of the write end, so that the pipe ends when
    the command's processes are gone); ``close`` once they are all killed.
    """

    _POLL_MS = 100  # how soon the thread notices it is told to stop

    def __init__(self, log: BoundedLog) -> None:
        self.log = log
        self._read_fd, self.write_fd = os.pipe()  # not inherited by other children
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="klaud-log", daemon=True)

    def started(self) -> None:
        os.close(self.write_fd)
        self._thread.start()

    def abandon(self) -> None:
        """The command could not be started."""
        os.close(self.write_fd)
        os.close(self._read_fd)

    def close(self, grace: float = 1.0) -> None:
        """Wait up to ``grace`` for the end of the output, then stop reading; idempotent."""
        self._thread.join(grace)
        self._stop.set()
        self._thread.join()

    def _drain(self) -> None:
        poller = select.poll()
        poller.register(self._read_fd, select.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(self._POLL_MS):
                    continue
                chunk = os.read(self._read_fd, 1 << 16)
                if not chunk:
                    return
                self.log.write(chunk)
        finally:
            os.close(self._read_fd)
