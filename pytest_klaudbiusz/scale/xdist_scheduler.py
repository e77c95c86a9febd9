"""xdist's ``load`` scheduling, dealing the apps one at a time for a longest-first order.

xdist's ``load`` gives each worker a first chunk of consecutive items (two at least: a
worker runs an item only once it holds the next one) and later chunks that grow with
the queue. With the longest apps first, the first worker would get the two longest
apps and run them back to back while the others finish early. Here the first two
rounds are dealt as a snake (with n workers, worker i gets the i-th and the
(2n-1-i)-th item: the worker running the shortest first app gets the next longest),
and after that a worker gets the next item each time it finishes one
(``maxschedchunk`` 1): greedy longest-first with the one item of look-ahead xdist needs.

Imported only when a session runs with ``-n`` and longest-first order.
"""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScheduling


class LongestFirstScheduling(LoadScheduling):  # type: ignore[misc]  # xdist is untyped here
    collection: list[str] | None

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self.maxschedchunk = 1

    def schedule(self) -> None:
        if self.collection is not None:  # a worker came up later: as xdist does
            super().schedule()
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        collection = next(iter(self.node2collection.values()))
        self.collection = collection
        self.pending[:] = range(len(collection))
        if not collection:
            return
        nodes = self.nodes
        for node in [*nodes, *reversed(nodes)]:
            self._send_tests(node, 1)
        if not self.pending:  # everything dealt: let the workers run their last items
            for node in nodes:
                node.shutdown()
