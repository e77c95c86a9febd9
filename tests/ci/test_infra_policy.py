"""Infrastructure errors fail the session by default, with a message that clears the apps,
even when a quality gate passes; ``--klaud-allow-infra-errors N`` tolerates up to N."""

from __future__ import annotations

import pytest
from helpers import INI, NO_TRACKING, make_app, make_suite, path_without_npm, read_report, run

INFRA_MESSAGE = (
    "ERROR: 1 infrastructure error(s) (needs-npm), more than the {allowed} allowed: the harness"
    " or the machine failed, not the apps.*--klaud-rerun=infra*--klaud-allow-infra-errors N"
)


@pytest.fixture
def corpus(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A good app and one whose install needs npm on a machine without it."""
    make_app(pytester.path, "good")
    make_app(pytester.path, "needs-npm", install="npm install", start="")
    make_suite(pytester)
    monkeypatch.setenv("PATH", path_without_npm(pytester.path))
    return pytester


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((), id="no-gate"),
        pytest.param(("--klaud-fail-under", "build_success_rate=0.9"), id="gate-passes"),
    ],
)
def test_infra_errors_fail_the_session_by_default(
    corpus: pytest.Pytester, args: tuple[str, ...]
) -> None:
    result = run(corpus, NO_TRACKING, *args)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([INFRA_MESSAGE.format(allowed=0)])
    if args:
        result.stdout.fnmatch_lines(
            [
                "*quality gate: PASSED*",
                "the gate passed; the infrastructure errors make the exit status 1",
            ]
        )
    summary = read_report(corpus.path / "app-eval")["summary"]
    assert (summary["infra_errors"], summary["build_success_rate"]) == (1, 1.0)


def test_tolerated_infra_errors_do_not_fail_the_session(corpus: pytest.Pytester) -> None:
    result = run(corpus, NO_TRACKING, "--klaud-allow-infra-errors", "1")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, errors=1)  # the case itself still shows what happened
    result.stdout.fnmatch_lines(
        ["1 infrastructure error(s) tolerated (--klaud-allow-infra-errors 1): needs-npm"]
    )


def test_tolerance_never_hides_a_failing_app(corpus: pytest.Pytester) -> None:
    make_app(corpus.path, "failing", test="exit 1")
    corpus.makeini(INI + "klaud_allow_infra_errors = 1\n")

    result = run(corpus, NO_TRACKING)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1, errors=1)
    assert "tolerated" not in result.stdout.str()
    assert "more than the 1 allowed" not in result.stdout.str()


def test_allowance_must_be_a_whole_number(corpus: pytest.Pytester) -> None:
    result = run(corpus, NO_TRACKING, "--klaud-allow-infra-errors", "some")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --klaud-allow-infra-errors 'some': use a whole number"])
    assert "Traceback" not in result.stderr.str()
