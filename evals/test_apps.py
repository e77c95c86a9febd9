"""The evaluation suite: one case per generated app under the apps folder.

Run it with ``pytest evals/ --klaud-mode=mcp``; each case installs, builds,
starts, queries and tests one app and fails when any of its checks fails.
"""


def test_app(klaud_app):
    klaud_app.check()
