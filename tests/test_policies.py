"""Scheduling policies beyond Ollama (docs/policies.md), each with a test that fails without it:
the configuration file, per-model slots, pinning, preload, priority with aging, fair queues and
cost-aware eviction. Fake runners in-process, time from MockClock."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tests.test_scheduler import FakeRunners, Holder, hold, scheduler, settle
from trio_ollama.config import ConfigError, Settings
from trio_ollama.config_file import (
    ConfigFileError,
    ModelPolicy,
    Policies,
    config_from,
    load_config_file,
)
from trio_ollama.runner.protocol import Completion
from trio_ollama.scheduler import LoadFailed, ServerBusy, policy
from trio_ollama.testing.simulation import fake_model


def policies(**models: ModelPolicy) -> Policies:
    return Policies(models=models)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trio-ollama.toml"
    path.write_text(textwrap.dedent(text))
    return path


# ----- the configuration file


def test_config_file_reads_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [server]
        num_parallel = 4
        keep_alive = "10m"
        max_loaded_models = 2

        [scheduler]
        fair_queues = true
        eviction = "cost"
        priority_aging = "30s"

        [models."smollm2:135m"]
        num_parallel = 8
        max_queue = 16
        pinned = true
        preload = true
        priority = 2

        [models.big]
        num_parallel = 1
        keep_alive = 60
        """,
    )
    config = load_config_file(path)
    p = config.policies
    assert p.fair_queues and p.eviction == "cost" and p.priority_aging == 30
    small = p.for_model("smollm2:135m")
    assert small == ModelPolicy(num_parallel=8, max_queue=16, pinned=True, preload=True, priority=2)
    # One section per model, however it is spelled.
    assert (
        p.for_model("big:latest")
        == p.for_model("big")
        == ModelPolicy(num_parallel=1, keep_alive=60)
    )
    assert p.for_model("other") == ModelPolicy()
    assert p.preloads == ("smollm2:135m",)
    assert config.counts == {"OLLAMA_NUM_PARALLEL": 4, "OLLAMA_MAX_LOADED_MODELS": 2}
    assert config.keep_alive == 600.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[scheduler]\nfair_queue = true\n", "scheduler.fair_queue: unknown key"),
        ("[scheduler]\neviction = 'lru'\n", "scheduler.eviction: 'lru' is not one of ollama, cost"),
        ("[scheduler]\nfair_queues = 'yes'\n", "scheduler.fair_queues: 'yes' is not true or false"),
        ("[scheduler]\npriority_aging = 0\n", "scheduler.priority_aging: 0 is under 1 ms"),
        ("[models.a]\nnum_parallel = 0\n", "models.a.num_parallel: 0 is not an integer >= 1"),
        ("[models.a]\nnum_parallel = 2.5\n", "models.a.num_parallel: 2.5 is not an integer"),
        ("[models.a]\nkeep_alive = 'soon'\n", "models.a.keep_alive: 'soon' is not a duration"),
        ("[models.a]\npinned = 1\n", "models.a.pinned: 1 is not true or false"),
        ("[models.a]\npriority = 'high'\n", "models.a.priority: 'high' is not an integer"),
        ("[models.a]\nslots = 2\n", "models.a.slots: unknown key"),
        ("[models.a]\n[models.'a:latest']\n", "models.a:latest: the same model as another"),
        ("[server]\nnum_parallel = -1\n", "server.num_parallel: -1 is not an integer >= 0"),
        ("[server]\nhost = '0.0.0.0'\n", "server.host: unknown key"),
        ("[server]\ncontext_length = 0\n", "server.context_length: 0 is not an integer >= 1"),
        ("[server]\nkeep_alive = 1e10\n", "server.keep_alive: 10000000000.0 is longer than"),
        ("[scheduler]\npriority_aging = 1e-9\n", "scheduler.priority_aging: 1e-09 is under 1 ms"),
        ("[models.a]\nmax_queue = 0\n", "models.a.max_queue: 0 is not an integer >= 1"),
        ("[models.a]\npinned = true\nkeep_alive = 5\n", "models.a.keep_alive: a pinned model"),
        ("[models.'not a name!']\n", "models.not a name!: not a valid model name"),
        ("[models.llama3.2]\npinned = true\n", 'must be quoted: [models."name.2"]'),
        ("models = 3\n", "models: a table of keys"),
        ("[models\n", "not TOML"),
    ],
)
def test_a_bad_config_file_is_refused_naming_file_key_and_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as caught:
        load_config_file(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    # At start-up the same error stops the server: Settings refuses it.
    with pytest.raises(ConfigError, match=str(path)):
        Settings.from_env({"TRIO_OLLAMA_CONFIG": str(path)})


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        Settings.from_env({"TRIO_OLLAMA_CONFIG": str(tmp_path / "absent.toml")})


def test_server_settings_from_the_file_yield_to_set_variables(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nnum_parallel = 4\nkeep_alive = '1m'\n")
    settings = Settings.from_env({"TRIO_OLLAMA_CONFIG": str(path)})
    assert settings.num_parallel == 4 and settings.keep_alive == 60
    for value, seconds in (("1e-5", 1e-5), ("-1", math.inf), ("'1h30m'", 5400.0), ("2.5", 2.5)):
        tiny = tmp_path / "keep-alive.toml"
        tiny.write_text(f"[server]\nkeep_alive = {value}\n")
        assert Settings.from_env({"TRIO_OLLAMA_CONFIG": str(tiny)}).keep_alive == seconds
    settings = Settings.from_env({"TRIO_OLLAMA_CONFIG": str(path), "OLLAMA_NUM_PARALLEL": "2"})
    assert settings.num_parallel == 2 and settings.keep_alive == 60
    assert Settings.from_env({}).policies == Policies(), "no file: Ollama's behaviour"


def test_serve_refuses_a_bad_config_file_at_start(tmp_path: Path, capsys: Any) -> None:
    from trio_ollama.cli.main import main

    path = write(tmp_path, "[models.a]\nnum_parallel = 'many'\n")
    assert main(["serve", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: models.a.num_parallel: 'many' is not an integer" in err


# ----- per-model slots, keep-alive and queue bound


async def test_per_model_num_parallel(autojump_clock: Any) -> None:
    config = policies(small=ModelPolicy(num_parallel=3), big=ModelPolicy(num_parallel=1))
    small, big = fake_model("small"), fake_model("big")
    async with scheduler(num_parallel=2, policies=config) as sched, trio.open_nursery() as n:
        smalls = [await hold(n, sched, small) for _ in range(3)]
        bigs = [await hold(n, sched, big) for _ in range(2)]
        await trio.sleep(5)
        assert all(h.lease is not None for h in smalls), "three slots for the small model"
        assert [h.lease is not None for h in bigs] == [True, False], "one for the big one"
        assert sched.loaded[small.key].num_parallel == 3
        assert sched.loaded[big.key].num_parallel == 1
        for h in smalls + bigs:
            h.release.set()
        other = await hold(n, sched, fake_model("other"))
        await trio.sleep(5)
        assert sched.loaded[other.model.key].num_parallel == 2, "others: the server's setting"
        other.release.set()


async def test_per_model_keep_alive(autojump_clock: Any) -> None:
    config = policies(brief=ModelPolicy(keep_alive=10))
    async with scheduler(policies=config) as sched:
        for name in ("brief", "usual"):
            async with sched.acquire(fake_model(name)):
                pass
        await trio.sleep(11)
        assert sorted(sched.loaded) == ["/fake/usual"], "brief went after 10 s, usual stays"
        async with sched.acquire(fake_model("brief"), keep_alive=100):
            pass
        await trio.sleep(50)
        assert "/fake/brief" in sched.loaded, "a request's keep_alive still wins"


async def test_per_model_queue_bound(autojump_clock: Any) -> None:
    config = policies(bounded=ModelPolicy(max_queue=1))
    bounded, free = fake_model("bounded"), fake_model("free")
    async with scheduler(policies=config) as sched, trio.open_nursery() as n:
        running = await hold(n, sched, bounded)
        waiting = await hold(n, sched, bounded)
        await trio.sleep(5)
        refused = await hold(n, sched, bounded)
        await refused.done.wait()
        assert isinstance(refused.error, ServerBusy)
        assert running.lease is not None and waiting.lease is None and waiting.error is None
        others = [await hold(n, sched, free) for _ in range(3)]
        await trio.sleep(5)
        assert sum(h.error is None for h in others) == 3, "another model has no such bound"
        for h in (running, waiting, *others):
            h.release.set()


# ----- pinning


async def test_a_pinned_model_is_not_evicted_for_another(autojump_clock: Any) -> None:
    config = policies(a=ModelPolicy(pinned=True))
    async with scheduler(max_loaded_models=2, policies=config) as sched:
        for name in ("a", "b"):
            async with sched.acquire(fake_model(name)):
                await trio.sleep(1)
        # a is the least recently used: Ollama's rule would evict it.
        async with sched.acquire(fake_model("c")):
            assert sorted(sched.loaded) == ["/fake/a", "/fake/c"]


async def test_a_load_that_cannot_fit_beside_pinned_models_fails_clearly(
    autojump_clock: Any,
) -> None:
    config = policies(a=ModelPolicy(pinned=True), b=ModelPolicy(pinned=True))
    async with scheduler(max_loaded_models=2, policies=config) as sched:
        for name in ("a", "b"):
            async with sched.acquire(fake_model(name)):
                pass
        with pytest.raises(LoadFailed, match=r"beside the pinned models \(a, b\)"):
            async with sched.acquire(fake_model("c")):
                pass  # pragma: no cover
        assert sorted(sched.loaded) == ["/fake/a", "/fake/b"], "nothing was unloaded"


async def test_a_pinned_model_ignores_keep_alive_but_not_a_stop(autojump_clock: Any) -> None:
    config = policies(a=ModelPolicy(pinned=True))
    model = fake_model("a")
    async with scheduler(keep_alive=5, policies=config) as sched:
        async with sched.acquire(model, keep_alive=1):
            pass
        await trio.sleep(3600)
        assert model.key in sched.loaded
        assert math.isinf(sched.loaded[model.key].keep_alive)
        sched.expire_model(model)  # `ollama stop a`: the user asked
        await settle()
        assert sched.loaded == {}


# ----- preload


async def test_preload_loads_without_a_request_and_again_after_a_crash(
    autojump_clock: Any,
) -> None:
    rec = FakeRunners()
    model = fake_model("a", crash_after_tokens=2, tokens_per_second=10, load_seconds=1)
    async with scheduler(rec) as sched:
        sched.keep_loaded(model)
        await trio.sleep(2)
        assert rec.loads == ["a"] and model.key in sched.loaded
        assert sched.loaded[model.key].refcount == 0, "preloading holds no slot"
        with pytest.raises(Exception, match="runner"):
            async with (
                sched.acquire(model) as lease,
                lease.runner.completion(Completion(id=0, prompt="x")) as stream,
            ):
                async for _ in stream:
                    pass
        await trio.sleep(5)
        assert rec.loads == ["a", "a"], "loaded again after the crash, with no request"
        assert model.key in sched.loaded
        sched.expire_model(model)
        await trio.sleep(5)
        assert rec.loads == ["a", "a"] and sched.loaded == {}, "a stop is not a crash"


async def test_a_preload_that_fails_is_retried(autojump_clock: Any) -> None:
    rec = FakeRunners()
    model = fake_model("bad", fail_load="no such file")
    async with scheduler(rec) as sched:
        sched.keep_loaded(model)
        await trio.sleep(10)
        # At 0, 1, 3 and 7 s: the wait doubles.
        assert rec.loads == ["bad"] * 4 and sched.loaded == {}


# ----- priority


async def test_priority_orders_a_runners_waiters(autojump_clock: Any) -> None:
    model = fake_model("a")
    async with scheduler() as sched, trio.open_nursery() as n:
        busy = await hold(n, sched, model)
        order: list[str] = []
        holders: list[Holder] = []
        for name, prio in (("low", 5), ("mid", 3), ("high", 0), ("default", None)):
            h = await hold(n, sched, model, priority=prio)
            holders.append(h)
            n.start_soon(_note, h, name, order)
            await trio.sleep(0.01)
        busy.release.set()
        await _release_in_turn(holders)
        assert order == ["high", "default", "mid", "low"]


async def _release_in_turn(holders: list[Holder]) -> None:
    """Let each holder go as soon as it has its slot, until all have had one."""
    while not all(h.done.is_set() for h in holders):
        await trio.sleep(0.1)
        for h in holders:
            if h.lease is not None:
                h.release.set()
        await settle()


async def _note(holder: Holder, name: str, order: list[str]) -> None:
    await holder.acquired.wait()
    order.append(name)


async def test_priority_orders_requests_that_must_load(autojump_clock: Any) -> None:
    rec = FakeRunners()
    async with scheduler(rec, max_loaded_models=9) as sched, trio.open_nursery() as n:
        first = await hold(n, sched, fake_model("slow", load_seconds=5))
        await trio.sleep(1)  # its load is under way: the next ones queue behind it
        for name, prio in (("x", 2), ("y", 1), ("z", 0)):
            await hold(n, sched, fake_model(name), priority=prio)
        await trio.sleep(10)
        assert rec.loads == ["slow", "z", "y", "x"]
        first.release.set()
        n.cancel_scope.cancel()


async def test_a_model_default_priority_applies_to_requests_naming_none(
    autojump_clock: Any,
) -> None:
    config = policies(batch=ModelPolicy(priority=9))
    rec = FakeRunners()
    async with scheduler(rec, policies=config) as sched, trio.open_nursery() as n:
        await hold(n, sched, fake_model("slow", load_seconds=5))
        await trio.sleep(1)
        await hold(n, sched, fake_model("batch"))
        await hold(n, sched, fake_model("chat"))
        await trio.sleep(10)
        assert rec.loads == ["slow", "chat", "batch"]
        n.cancel_scope.cancel()


async def test_aging_bounds_how_long_priority_can_hold_a_request_back(
    autojump_clock: Any,
) -> None:
    """Aging 10 s a level: a priority-1 request goes before priority-0 requests that arrive
    more than 10 s after it, however many there are, and after those that arrive sooner."""
    model = fake_model("a")
    config = attrs.evolve(Policies(), priority_aging=10.0)
    async with scheduler(policies=config) as sched, trio.open_nursery() as n:
        busy = await hold(n, sched, model)
        order: list[str] = []
        low = await hold(n, sched, model, priority=1)
        n.start_soon(_note, low, "low", order)
        holders = [low]
        for at in (5, 9.5, 10.5, 15):
            await trio.sleep_until(at)
            h = await hold(n, sched, model, priority=0)
            holders.append(h)
            n.start_soon(_note, h, f"high@{at:g}", order)
        busy.release.set()
        await _release_in_turn(holders)
        assert order == ["high@5", "high@9.5", "low", "high@10.5", "high@15"]


def test_queue_key_without_aging_is_priority_then_arrival() -> None:
    inf = math.inf
    assert policy.queue_key(0, 100.0, inf) < policy.queue_key(1, 0.0, inf)
    assert policy.queue_key(1, 0.0, inf) < policy.queue_key(1, 1.0, inf)
    assert policy.queue_key(1, 0.0, 10) < policy.queue_key(0, 10.5, 10)
    assert policy.queue_key(1, 0.0, 10) > policy.queue_key(0, 9.5, 10)


# ----- fair queues


async def _ttft_while_another_loads(fair: bool) -> tuple[float, list[str]]:
    """A slow model starts loading; a fast one is asked for a second later."""
    rec = FakeRunners()
    config = Policies(fair_queues=fair)
    async with scheduler(rec, policies=config) as sched, trio.open_nursery() as n:
        slow = await hold(n, sched, fake_model("slow", load_seconds=30))
        await trio.sleep(1)
        started = trio.current_time()
        async with sched.acquire(fake_model("fast", load_seconds=0.1)):
            waited = trio.current_time() - started
        slow.release.set()
        await slow.done.wait()
        return waited, rec.loads


async def test_without_fair_queues_a_load_waits_behind_another(autojump_clock: Any) -> None:
    waited, loads = await _ttft_while_another_loads(fair=False)
    assert waited >= 29, "Ollama's one load at a time"
    assert loads == ["slow", "fast"]


async def test_fair_queues_let_a_model_load_beside_a_slow_load(autojump_clock: Any) -> None:
    waited, loads = await _ttft_while_another_loads(fair=True)
    assert waited < 0.5
    assert sorted(loads) == ["fast", "slow"]


async def _load_beside_a_draining_eviction(fair: bool) -> tuple[bool, bool]:
    """Two models fit, both busy. c must wait for a to drain; then d is asked for, and b's
    request ends. Does d load into b's room at once, or wait behind c?"""
    config = Policies(fair_queues=fair)
    async with scheduler(max_loaded_models=2, policies=config) as sched, trio.open_nursery() as n:
        await hold(n, sched, fake_model("a"))
        await trio.sleep(1)
        b = await hold(n, sched, fake_model("b"))
        await trio.sleep(1)
        c = await hold(n, sched, fake_model("c"))  # evicts a, the least recently used
        await trio.sleep(1)
        d = await hold(n, sched, fake_model("d"))
        await trio.sleep(1)
        b.release.set()
        await trio.sleep(5)
        served = (c.lease is not None, d.lease is not None)
        n.cancel_scope.cancel()
        return served


async def test_without_fair_queues_an_eviction_holds_up_other_models(
    autojump_clock: Any,
) -> None:
    assert await _load_beside_a_draining_eviction(fair=False) == (False, False)


async def test_fair_queues_do_not_let_an_eviction_hold_up_other_models(
    autojump_clock: Any,
) -> None:
    assert await _load_beside_a_draining_eviction(fair=True) == (False, True)


async def test_fair_queues_serve_requests_in_order_within_a_model(autojump_clock: Any) -> None:
    rec = FakeRunners()
    config = Policies(fair_queues=True)
    model = fake_model("a", load_seconds=2)
    async with scheduler(rec, policies=config) as sched, trio.open_nursery() as n:
        order: list[int] = []
        holders = []
        for i in range(3):
            h = await hold(n, sched, model)
            holders.append(h)
            n.start_soon(_note, h, str(i), order)
        for h in holders:
            await h.acquired.wait()
            h.release.set()
        await settle()
        assert order == ["0", "1", "2"] and rec.loads == ["a"]


# ----- cost-aware eviction


async def _evicted(eviction: str) -> list[str]:
    rec = FakeRunners()
    config = Policies(eviction=eviction)  # type: ignore[arg-type]
    big = fake_model("big", load_seconds=20)
    async with scheduler(rec, max_loaded_models=2, policies=config) as sched:
        async with sched.acquire(big):
            pass
        small = fake_model("small", load_seconds=1)
        for _ in range(3):
            async with sched.acquire(small):
                await trio.sleep(1)
        async with sched.acquire(fake_model("other", load_seconds=1)):
            return sorted(sched.loaded)


async def test_cost_aware_eviction_keeps_the_expensive_model(autojump_clock: Any) -> None:
    assert await _evicted("ollama") == ["/fake/other", "/fake/small"], "LRU: big goes"
    assert await _evicted("cost") == ["/fake/big", "/fake/other"], "cheap small goes"


def test_reload_cost_weighs_load_time_by_the_odds_of_reuse() -> None:
    @attrs.define
    class View:
        load_seconds: float
        loaded_at: float = 0.0
        last_used: float = 0.0
        uses: int = 1
        refcount: int = 0
        pinned: bool = False
        recency: int = 0

    often = View(load_seconds=1, uses=50, last_used=99)  # every 2 s, 1 s ago
    rare = View(load_seconds=1, uses=1, last_used=0)  # once, 100 s ago
    assert policy.reload_cost(often, 100) > policy.reload_cost(rare, 100)
    costly = View(load_seconds=30, uses=2, last_used=50)  # twice, 50 s ago
    assert policy.reload_cost(costly, 100) > policy.reload_cost(often, 100)
    busy = View(load_seconds=5, refcount=1)
    assert policy.reload_cost(busy, 100) == 5
    # Gone quiet: a dear model used once a day ago is worth less than a cheap one in use.
    stale = View(load_seconds=30, uses=1, loaded_at=0, last_used=0)
    hot = View(load_seconds=1, uses=50, loaded_at=100_000, last_used=100_099)
    assert policy.reload_cost(stale, 100_100) < policy.reload_cost(hot, 100_100)
    assert policy.find_runner_to_unload_by_cost([hot, stale], 100_100) is stale  # type: ignore[type-var]


def test_config_from_accepts_an_empty_file() -> None:
    assert config_from({}).policies == Policies()


# ----- in the simulator and the load generator


def test_a_machine_file_carries_the_configuration_file() -> None:
    from trio_ollama.sim.machine import MachineError, machine_from

    machine = machine_from({
        "env": {"OLLAMA_NUM_PARALLEL": "2"},
        "config": {"server": {"num_parallel": 4, "max_loaded_models": 3},
                   "scheduler": {"fair_queues": True}, "models": {"a": {"pinned": True}}},
    })  # fmt: skip
    policies = machine.config.policies
    assert policies.fair_queues and policies.for_model("a").pinned
    # The file's [server] settings are the server's unless [env] sets the variable.
    settings = Settings.from_env(machine.env, config=machine.config)
    assert (settings.num_parallel, settings.max_loaded_models) == (2, 3)
    with pytest.raises(MachineError, match=r"config\.scheduler\.eviction: 'lru'"):
        machine_from({"config": {"scheduler": {"eviction": "lru"}}})


def test_a_trace_carries_priorities_to_the_server_and_the_simulator(tmp_path: Path) -> None:
    from trio_ollama.bench.client import request_of
    from trio_ollama.bench.plan import Planned, read_trace, write_trace
    from trio_ollama.bench.spec import SpecError

    plans = [Planned(index=0, at=0.0, model="m", prompt="hi", priority=3),
             Planned(index=1, at=1.0, model="m", prompt="hi")]  # fmt: skip
    write_trace(plans, tmp_path / "t.jsonl")
    back = read_trace(tmp_path / "t.jsonl")
    assert [p.priority for p in back] == [3, None]
    for api in ("generate", "chat", "openai-chat", "openai-completions"):
        assert request_of(api, back[0], raw=False)[1]["priority"] == 3  # type: ignore[arg-type]
        assert "priority" not in request_of(api, back[1], raw=False)[1]  # type: ignore[arg-type]
    (tmp_path / "bad.jsonl").write_text('{"model": "m", "priority": "high"}\n')
    with pytest.raises(SpecError, match="priority: an integer"):
        read_trace(tmp_path / "bad.jsonl")


def test_the_simulator_honours_priorities_and_the_configuration() -> None:
    """A flood of priority-10 requests and a few priority-0 ones, one slot: with priorities
    the urgent ones wait for one request at most; the same trace without them waits in line."""
    from trio_ollama.bench import spec_from
    from trio_ollama.bench.plan import Planned, write_trace
    from trio_ollama.sim import Machine, ModelProfile, simulate

    def run(urgent_priority: int | None, tmp: Path) -> list[float]:
        plans = [Planned(index=0, at=i * 0.1, model="m", prompt="x", max_tokens=20,
                         priority=10 if urgent_priority is not None else None)
                 for i in range(30)]  # fmt: skip
        plans += [Planned(index=0, at=1.05 + i, model="m", prompt="urgent", max_tokens=20,
                          priority=urgent_priority) for i in range(3)]  # fmt: skip
        plans.sort(key=lambda p: p.at)
        write_trace(plans, tmp)
        spec = spec_from({"load": {"mode": "trace", "trace": str(tmp)}, "timeout": 3600})
        machine = Machine(
            env={"OLLAMA_NUM_PARALLEL": "1"},
            models={"m": ModelProfile(tokens_per_second=20.0, load_seconds=0.5)},
        )
        (step,) = simulate(spec, machine)
        urgent = {i for i, p in enumerate(plans) if p.prompt == "urgent"}
        return [o.ttft for o in step.outcomes if o.index in urgent and o.ttft is not None]

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        honoured = run(0, Path(tmp) / "a.jsonl")
        equal = run(None, Path(tmp) / "b.jsonl")
    assert len(honoured) == len(equal) == 3
    assert max(honoured) < 1.1, "at most one 20-token request (1 s) ahead"
    assert min(equal) > 5, "in line behind the flood"


def test_the_documented_configuration_is_valid() -> None:
    import re
    import tomllib

    docs = Path(__file__).resolve().parents[1]
    for page in ("docs/policies.md", "README.md"):
        blocks = re.findall(r"```toml\n(.*?)```", (docs / page).read_text(), re.S)
        assert blocks, page
        for block in blocks:
            config_from(tomllib.loads(block))
    (full,) = re.findall(r"```toml\n(.*?)```", (docs / "docs/policies.md").read_text(), re.S)
    policies = config_from(tomllib.loads(full)).policies
    assert policies.for_model("qwen3:32b") == ModelPolicy(
        num_parallel=1, max_queue=8, pinned=True, preload=True, priority=0
    )
    assert policies.for_model("llama3.2") == ModelPolicy(num_parallel=8, keep_alive=3600)


async def test_fair_queues_count_the_memory_of_a_model_still_loading(
    autojump_clock: Any,
) -> None:
    """Loads overlap with fair queues, and a runner still loading is not yet in the reported
    free memory: the next plan must count it, or two models overcommit the machine."""
    from trio_ollama.gocompat.format import GiB
    from trio_ollama.scheduler.devices import FakeDevices, SystemMemory

    budget = 3 * GiB
    devices = FakeDevices(system=SystemMemory(total=budget, free=budget, free_swap=0))
    rec = FakeRunners(devices)
    config = Policies(fair_queues=True)
    async with scheduler(rec, devices=devices, policies=config) as sched, trio.open_nursery() as n:
        big = await hold(n, sched, fake_model("big", 2 * GiB, load_seconds=5))
        await trio.sleep(1)  # big is loading
        small = await hold(n, sched, fake_model("small", GiB, load_seconds=1))
        for _ in range(20):
            assert sum(r.size for r in sched.loaded.values()) <= budget
            await trio.sleep(0.5)
        assert big.lease is not None and small.lease is None, "small waits for room"
        big.release.set()
        await trio.sleep(10)
        assert small.lease is not None
        small.release.set()


def test_client_commands_do_not_read_the_servers_config_file(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.server import free_port
    from trio_ollama.cli.main import main

    path = write(tmp_path, "[models.a]\nnum_parallel = 'many'\n")
    monkeypatch.setenv("TRIO_OLLAMA_CONFIG", str(path))
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")  # nothing listens there
    assert main(["list"]) == 1
    err = capsys.readouterr().err
    assert "could not connect" in err.lower() and "num_parallel" not in err
    assert main(["serve"]) == 1
    assert "models.a.num_parallel: 'many'" in capsys.readouterr().err


async def test_a_load_that_cannot_fit_beside_pinned_models_unloads_nothing(
    autojump_clock: Any,
) -> None:
    """Memory: pinned a takes 2 of 3 GiB; b (0.5) is loaded too. c needs 1.5 GiB: evicting b
    would not make room, so b stays and c is refused at once."""
    from trio_ollama.gocompat.format import GiB
    from trio_ollama.scheduler.devices import FakeDevices, SystemMemory

    budget = 3 * GiB
    devices = FakeDevices(system=SystemMemory(total=budget, free=budget, free_swap=0))
    rec = FakeRunners(devices)
    config = policies(a=ModelPolicy(pinned=True))
    async with scheduler(rec, devices=devices, policies=config) as sched:
        for name, size in (("a", 2 * GiB), ("b", GiB // 2)):
            async with sched.acquire(fake_model(name, size)):
                pass
        with pytest.raises(LoadFailed, match=r"does not fit beside the pinned models \(a\)"):
            async with sched.acquire(fake_model("c", 3 * GiB // 2)):
                pass  # pragma: no cover
        assert sorted(sched.loaded) == ["/fake/a", "/fake/b"], "b was not unloaded for nothing"
        assert rec.loads == ["a", "b"]


async def test_preload_follows_a_reload_and_backs_off_a_runner_that_keeps_crashing(
    autojump_clock: Any,
) -> None:
    from trio_ollama.scheduler import RunnerOptions

    rec = FakeRunners()
    model = fake_model("a", crash_after_tokens=1, tokens_per_second=10, load_seconds=0.1)

    async def crash(options: RunnerOptions | None = None) -> None:
        with pytest.raises(Exception, match="runner"):
            async with (
                sched.acquire(model, options) as lease,
                lease.runner.completion(Completion(id=0, prompt="x")) as stream,
            ):
                async for _ in stream:
                    pass

    async with scheduler(rec) as sched:
        sched.keep_loaded(model, RunnerOptions(num_ctx=2048))
        await trio.sleep(1)
        assert rec.loads == ["a"]
        # A request with other options reloads it: the preload follows the new runner.
        await crash(RunnerOptions(num_ctx=1024))
        assert rec.loads == ["a", "a"]
        crashed = trio.current_time()
        await trio.sleep(0.5)
        assert rec.loads == ["a", "a"], "a crash right after loading: a second's wait first"
        await trio.sleep(1)
        assert rec.loads == ["a", "a", "a"] and model.key in sched.loaded
        reloaded = trio.current_time()
        await crash(RunnerOptions(num_ctx=2048))  # the preload's own options: no reload
        await trio.sleep(1.5)
        assert len(rec.loads) == 3, "crashing again at once: two seconds now"
        await trio.sleep(1)
        assert len(rec.loads) == 4
        assert reloaded - crashed >= 1
        sched.expire_model(model)


def test_the_simulator_reads_policies_from_the_machine_file(tmp_path: Path) -> None:
    """A slow load, then a fast model asked for a second later: behind it in one lane, beside
    it with `fair_queues` in the machine file's [config]."""
    from trio_ollama.bench import spec_from
    from trio_ollama.bench.plan import Planned, write_trace
    from trio_ollama.sim import simulate
    from trio_ollama.sim.machine import machine_from

    trace = tmp_path / "t.jsonl"
    plans = [
        Planned(index=0, at=0.0, model="slow", prompt="x", max_tokens=4),
        Planned(index=1, at=1.0, model="fast", prompt="x", max_tokens=4),
    ]
    write_trace(plans, trace)
    spec = spec_from({"load": {"mode": "trace", "trace": str(trace)}})
    ttfts = {}
    for fair in (False, True):
        machine = machine_from({
            "models": {"slow": {"load_seconds": 20.0}, "fast": {"load_seconds": 0.1}},
            "config": {"scheduler": {"fair_queues": fair}},
        })  # fmt: skip
        (step,) = simulate(spec, machine)
        ttfts[fair] = next(o.ttft for o in step.outcomes if o.model == "fast")
    assert ttfts[False] is not None and ttfts[False] > 18
    assert ttfts[True] is not None and ttfts[True] < 1
