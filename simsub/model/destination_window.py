"""One destination's concurrency window and dead state, as Postfix's qmgr keeps them.

Postfix 3.7, ``src/qmgr/qmgr_queue.c``: each in-core destination queue has a
concurrency *window* (how many deliveries to it may run at once).

* ``qmgr_queue_create``: a new queue starts at ``initial_destination_concurrency``
  (5), at most the transport's ``destination_concurrency_limit``; it is
  discarded (``qmgr_queue_done``, called from ``qmgr_entry_done``) as soon as it
  has nothing waiting and nothing in progress, so the next mail starts afresh.
* ``qmgr_queue_unthrottle`` (positive feedback, after every delivery that did
  not fail at the connection or greeting): resets the failed-cohort count; while
  the window is below the limit *and* below ``busy + initial`` it adds the
  positive feedback (1) to ``success`` and, for every whole unit, widens the
  window by 1 and clears ``failure``.  On a dead queue it brings it back:
  window = deliveries still in progress, or the initial concurrency if none.
* ``qmgr_queue_throttle`` (negative feedback, after a delivery that failed at
  connection or greeting level): adds ``1 / window`` to ``fail_cohorts``; at
  ``destination_concurrency_failed_cohort_limit`` (1) the queue is **dead**
  (window 0) and a timer of ``minimal_backoff_time`` will unthrottle it.
  Otherwise ``failure`` drops by the negative feedback (1) and, while
  ``failure - feedback / 2 < 0``, the window shrinks by 1 (never below 1),
  ``success`` is cleared and ``failure`` grows by 1.

Both feedbacks are Postfix's defaults (``default_destination_concurrency_
positive_feedback`` and ``..._negative_feedback`` = 1, hysteresis 1); the
``1/concurrency`` forms are not modelled.  Note the literal arithmetic: from
``failure = 0`` one failure shrinks the window by 2, the next ones by 1 each.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr


# Compiled, open to subclasses in Python (tests/test_postfix_dead.py records the window in one).
@mypyc_attr(allow_interpreted_subclasses=True)
class DestinationWindow:
    """The in-core queue state of one destination (counts are deliveries)."""

    __slots__ = ("initial", "limit", "cohort_limit", "window", "success", "failure", "fail_cohorts", "generation")

    def __init__(self, initial: int, limit: int, cohort_limit: int):
        self.initial = min(initial, limit)  # qmgr_transport.c caps it by the destination limit
        self.limit = limit
        self.cohort_limit = cohort_limit  # 0: never declared dead
        self.generation = 0  # bumped whenever the queue revives, so a stale revival timer does nothing
        self.reset()

    @property
    def dead(self) -> bool:
        return self.window == 0

    def reset(self) -> None:
        """qmgr_queue_done + qmgr_queue_create: the empty queue is discarded; the next is new."""
        self.window = self.initial
        self.success = 0.0
        self.failure = 0.0
        self.fail_cohorts = 0.0

    def unthrottle(self, busy: int) -> None:
        """Positive feedback; ``busy``: deliveries in progress, counting the one just finished."""
        self.fail_cohorts = 0.0
        if self.window == 0:  # back from the almost grave
            self.window = busy if busy > 0 else self.initial
            self.success = self.failure = 0.0
            self.generation += 1
            return
        if self.window < self.limit and self.window < busy + self.initial:
            self.success += 1.0
            while self.success + 0.5 >= 1.0:
                self.window += 1
                self.success -= 1.0
                self.failure = 0.0
            if self.window > self.limit:
                self.window = self.limit

    def throttle(self) -> bool:
        """Negative feedback after a connection/greeting failure; True if the destination is now dead."""
        if self.window == 0:
            return False  # already dead: qmgr_deliver_update does not call qmgr_queue_throttle
        self.fail_cohorts += 1.0 / self.window
        if self.cohort_limit > 0 and self.fail_cohorts >= self.cohort_limit:
            self.window = 0
            return True
        self.failure -= 1.0
        while self.failure - 0.5 < 0.0:
            self.window -= 1
            self.success = 0.0
            self.failure += 1.0
        if self.window < 1:
            self.window = 1
        return False
