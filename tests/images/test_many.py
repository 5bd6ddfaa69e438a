"""imgkernel.images.many: batches on worker processes, results in order, the failure rule."""

from __future__ import annotations

import os

import pytest
from batch_helpers import WhereJob

from imgkernel.errors import BatchFailed
from imgkernel.images import BatchOptions, Reporter
from imgkernel.images.many import Batches, cores, run_many


class Recorder(Reporter):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def start(self, total: int, skipped: int = 0) -> None:
        self.events.append(("start", (total, skipped)))

    def advance(self, count: int = 1) -> None:
        self.events.append(("advance", count))

    def failed(self, message: str) -> None:
        self.events.append(("failed", message))

    def close(self) -> None:
        self.events.append(("close", None))


def collect(items: list[int], **options: object) -> tuple[list, Recorder]:
    seen: list = []
    reporter = Recorder()
    batch = BatchOptions(reporter=reporter, **options)  # type: ignore[arg-type]
    run_many(WhereJob(), items, batch, emit=lambda item, value: seen.append(value))
    return seen, reporter


def test_worker_processes_keep_the_order_and_limit_threads():
    items = list(range(60))
    seen, reporter = collect(items, jobs=2)
    assert [value[0] for value in seen] == items
    pids = {value[1] for value in seen}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert {value[2] for value in seen} == {str(max(1, cores() // 2))}
    assert reporter.events[0] == ("start", (60, 0)) and reporter.events[-1] == ("close", None)
    assert sum(n for kind, n in reporter.events if kind == "advance") == 60


def test_few_items_or_one_job_run_here():
    seen, _ = collect(list(range(5)), jobs=2)
    assert {value[1] for value in seen} == {os.getpid()}
    seen, _ = collect(list(range(30)), jobs=1)
    assert {value[1] for value in seen} == {os.getpid()}


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_bad_item_among_many_is_reported_and_the_others_done(jobs: int):
    items = [*range(20), -1, *range(20, 40), -2]
    done: list = []
    recorder = Recorder()
    with pytest.raises(BatchFailed, match="^2 of 42 inputs failed$") as caught:
        run_many(
            WhereJob(),
            items,
            BatchOptions(jobs=jobs, reporter=recorder),
            emit=lambda item, value: done.append(item),
        )
    assert caught.value.exit_code == 2  # every failure a usage error
    assert done == [i for i in items if i >= 0]
    failed = [m for kind, m in recorder.events if kind == "failed"]
    assert failed == ["item-1: item -1: negative", "item-2: item -2: negative"]


def test_any_failure_other_than_usage_makes_status_1():
    with pytest.raises(BatchFailed, match="2 of 4 inputs failed") as caught:
        run_many(WhereJob(), [1, -1, 1000, 2], BatchOptions())
    assert caught.value.exit_code == 1
    assert [status for _, status in caught.value.failures] == [2, 1]


def test_fail_fast_stops_at_the_first_failure():
    done: list = []
    with pytest.raises(BatchFailed, match="^item-1: item -1: negative$") as caught:
        run_many(
            WhereJob(),
            [0, 1, -1, 2, 3],
            BatchOptions(fail_fast=True),
            emit=lambda item, value: done.append(item),
        )
    assert caught.value.exit_code == 2 and done == [0, 1]


def test_batches_grow_to_a_second_of_work_and_spread_the_tail():
    batches = Batches(list(range(1000)), 2)
    cut = iter(batches)
    assert len(next(cut)) == 4
    batches.observe(4, 0.004)  # 1 ms an item
    assert len(next(cut)) == 100
    assert Batches(list(range(10)), 2).size(10) == 4
    assert Batches(list(range(10)), 1, 64).size(10) == 64
