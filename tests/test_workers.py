"""How `./dev test` shares the cores among its xdist workers (`tests/workers.py`)."""

from __future__ import annotations

from tests.workers import cores_of_worker, has_waiting_worker


def test_three_workers_on_two_cores_a_core_each_and_a_waiting_one_on_both() -> None:
    cores = {4, 7}
    assert has_waiting_worker(3, cores)
    assert [cores_of_worker(i, 3, cores) for i in range(3)] == [[4], [7], [4, 7]]


def test_no_waiting_worker_where_every_worker_has_a_core() -> None:
    assert not has_waiting_worker(2, {0, 1})
    assert [cores_of_worker(i, 2, {0, 1}) for i in range(2)] == [[0], [1]]
    assert [cores_of_worker(i, 2, set(range(5))) for i in range(2)] == [[0, 1], [2, 3]]
    assert not has_waiting_worker(1, {0})
    assert cores_of_worker(0, 1, {0}) == [0]


def test_more_workers_than_cores_beside_the_waiting_one_share_them_all() -> None:
    assert has_waiting_worker(4, {0, 1})
    assert [cores_of_worker(i, 4, {0, 1}) for i in range(4)] == [[0, 1]] * 4
