"""The evaluation's test case when the folder has none: ``pytest --klaud-apps DIR`` run
where no test file is collected evaluates the apps anyway, one case per app, as the
sample suite (``evals/test_apps.py``) does."""

from __future__ import annotations

from pytest_klaudbiusz.klaud_app import KlaudApp


def test_app(klaud_app: KlaudApp) -> None:
    klaud_app.check()
