"""Bounded logs: what is kept of a command's output, the excerpt reports show, and the
pipe that is drained but never waited on. (Whole evaluations of a flooding app are in
test_evaluation.py.)"""

from __future__ import annotations

import re
import subprocess
import threading
import time

from pytest_klaudbiusz.apps.logs import (
    EXCERPT_CHARS,
    EXCERPT_HEAD_BYTES,
    EXCERPT_TAIL_BYTES,
    BoundedLog,
    LogPipe,
    dropped_marker,
)
from pytest_klaudbiusz.apps.scoring import parse_coverage

SECRET = "SECRET-VALUE-0123456789"
MARKER_LINE = re.compile(r"^\[\.\.\. [\d,]+ bytes dropped \.\.\.\]$", re.MULTILINE)


def logged(data: bytes, head_size: int = 4096, tail_size: int = 8192) -> BoundedLog:
    """``data`` written to a BoundedLog in chunks of uneven sizes, as a pipe delivers it."""
    log = BoundedLog(head_size, tail_size)
    sizes = (1, 7, 4096, 65536, 100)
    offset = 0
    while offset < len(data):
        size = sizes[offset % len(sizes)]
        log.write(data[offset : offset + size])
        offset += size
    return log


def numbered(count: int) -> list[bytes]:
    return [f"line {i}\n".encode() for i in range(count)]


def test_a_short_output_is_kept_and_shown_whole() -> None:
    lines = numbered(40)
    log = logged(b"".join(lines))

    assert (log.dropped, log.head + log.tail) == (0, b"".join(lines))
    assert log.excerpt() == b"".join(lines).decode().rstrip("\n")
    assert log.text() == b"".join(lines).decode()


def test_a_long_output_keeps_its_head_and_tail_and_counts_what_it_dropped() -> None:
    lines = numbered(100_000)
    data = b"".join(lines)
    log = logged(data)

    assert log.head == data[:4096] and log.tail == data[-8192:]
    assert log.dropped == len(data) - 4096 - 8192
    shown_head, shown_tail = b"".join(lines[:10]), b"".join(lines[-30:])
    assert log.excerpt() == "\n".join(
        [
            shown_head.decode().rstrip("\n"),
            dropped_marker(len(data) - len(shown_head) - len(shown_tail)),
            shown_tail.decode().rstrip("\n"),
        ]
    )
    assert log.text().count(dropped_marker(log.dropped)) == 1


def test_an_output_kept_whole_but_too_long_to_show_is_shown_as_head_and_tail() -> None:
    lines = numbered(41)
    log = logged(b"".join(lines))

    assert log.dropped == 0
    excerpt = log.excerpt().splitlines()
    assert excerpt[:10] == [line.decode().strip() for line in lines[:10]]
    assert excerpt[10] == dropped_marker(len(lines[10]))
    assert excerpt[11:] == [line.decode().strip() for line in lines[11:]]


def test_one_huge_line_is_shown_within_bounds() -> None:
    log = logged(b"<" + b"x" * 3_000_000 + b">\n")

    excerpt = log.excerpt()
    assert len(excerpt) <= EXCERPT_CHARS
    assert excerpt.startswith("<x") and excerpt.endswith("x>")
    assert MARKER_LINE.search(excerpt)


def _leaked(excerpt: str) -> str:
    """What is left of an excerpt of '.'-filled output once redactions and the marker go."""
    return MARKER_LINE.sub("", excerpt.replace("[REDACTED]", "")).replace(".", "").strip()


def test_a_secret_cut_in_two_by_a_dropped_part_is_redacted_on_both_sides() -> None:
    secret = SECRET.encode()
    for cut in range(len(secret) + 1):
        # The secret straddles the end of the kept head, then the start of the kept tail.
        head_side = b"." * (500 - cut) + secret + b"." * 5000
        tail_side = b"." * 5000 + secret + b"." * (300 - len(secret) + cut)
        log = logged(head_side + tail_side, head_size=500, tail_size=300)

        assert log.dropped > 0
        assert _leaked(log.excerpt((SECRET,))) == "", cut


def test_a_secret_cut_in_two_by_the_excerpt_is_redacted_on_both_sides() -> None:
    secret = SECRET.encode()
    for cut in range(len(secret) + 1):
        head_side = b"." * (EXCERPT_HEAD_BYTES - cut) + secret + b"." * 100
        tail_side = b"." * 100 + secret + b"." * (EXCERPT_TAIL_BYTES - len(secret) + cut)
        log = logged(head_side + tail_side, head_size=1 << 20)

        assert log.dropped == 0
        assert _leaked(log.excerpt((SECRET,))) == "", cut


def test_redaction_leaves_other_output_alone() -> None:
    log = logged(f"token={SECRET}\nport=8000\n".encode() + b"." * 10_000 + b"\nSECRET-\n")

    excerpt = log.excerpt((SECRET, "unprinted-secret"))
    assert excerpt.splitlines()[:2] == ["token=[REDACTED]", "port=8000"]
    assert excerpt.endswith("\nSECRET-")  # the start of a secret, but nothing was cut after it


def test_coverage_printed_at_the_end_of_a_flood_is_kept() -> None:
    summary = b"All files |    85.7 |       50 |     100 |    85.7 |\n"
    log = BoundedLog()
    for _ in range(300):
        log.write(b"noise " * 10_000 + b"\n")
    log.write(summary)

    assert log.dropped > 0
    assert parse_coverage(log.text()) == 85.7


def test_a_writer_outliving_its_command_does_not_hold_up_the_log() -> None:
    log = BoundedLog()
    pipe = LogPipe(log)
    writer = subprocess.Popen(
        ["sh", "-c", "echo before; exec sleep 600"], stdout=pipe.write_fd, start_new_session=True
    )
    pipe.started()
    closer = threading.Thread(target=pipe.close, kwargs={"grace": 0.1})
    try:
        while not log.total:  # "before" went through the pipe
            time.sleep(0.01)
        closer.start()
        closer.join(30)  # not a measurement: a close that waits for the writer never returns
        assert not closer.is_alive()
        assert log.text() == "before\n"
    finally:
        writer.kill()
        writer.wait()
