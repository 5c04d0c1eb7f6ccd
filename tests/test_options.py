"""The one option table: everything that knows about options takes it from there."""

from __future__ import annotations

import attrs
import pytest

from trio_ollama.api.errors import APIError
from trio_ollama.api.schemas import GenerateRequest
from trio_ollama.options import (
    INT32_MAX,
    LOAD_OPTIONS,
    OPTIONS,
    PREDICT_OPTIONS,
    OptionError,
    check_option,
    defaults,
    format_params,
)
from trio_ollama.runner.protocol import Load, Sampling
from trio_ollama.scheduler import RunnerOptions


def test_every_option_is_loaded_or_predicted_once() -> None:
    assert sorted(LOAD_OPTIONS + PREDICT_OPTIONS) == sorted(OPTIONS)
    assert set(LOAD_OPTIONS).isdisjoint(PREDICT_OPTIONS)


def test_the_runner_and_the_scheduler_take_their_fields_and_defaults_from_the_table() -> None:
    sampling = attrs.fields_dict(Sampling)
    assert sorted(sampling) == sorted(PREDICT_OPTIONS)
    runner = attrs.fields_dict(RunnerOptions)
    assert sorted(runner) == sorted(LOAD_OPTIONS)
    assert issubclass(Load, RunnerOptions), "a load message carries the load options"
    load = attrs.fields_dict(Load)
    for name, option in OPTIONS.items():
        if option.stage == "predict":
            default = sampling[name].default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = tuple(default.factory())  # type: ignore[attr-defined]
            assert default == option.default, name
        else:
            assert runner[name].default == option.default, name
            assert load[name].default == option.default, name


def test_defaults_are_the_table_with_the_configured_context() -> None:
    values = defaults(num_ctx=2048)
    assert values["num_ctx"] == 2048 and values["stop"] == []
    assert {k: v for k, v in values.items() if k not in ("num_ctx", "stop")} == {
        name: option.default for name, option in OPTIONS.items() if name not in ("num_ctx", "stop")
    }


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("num_ctx", -1, 'option "num_ctx" must be >= 0, got -1'),
        ("num_thread", INT32_MAX + 1, f'option "num_thread" must be <= {INT32_MAX}'),
        ("top_p", 1.5, 'option "top_p" must be between 0 and 1, got 1.5'),
        ("temperature", -0.5, 'option "temperature" must be >= 0, got -0.5'),
        ("repeat_penalty", 1e39, 'option "repeat_penalty" must be a finite number'),
        ("seed", 2**64, 'option "seed" must be <= 9223372036854775807'),
        ("stop", 5, 'option "stop" must be of type array'),
    ],
)
def test_ranges_come_from_the_table(name: str, value: object, message: str) -> None:
    with pytest.raises(OptionError) as info:
        check_option(name, value)
    assert str(info.value).startswith(message)
    # The API's options and the Modelfile's parameters apply the same rule.
    with pytest.raises(APIError) as api:
        GenerateRequest.from_json({"options": {name: value}})
    assert api.value.message.startswith(message)


def test_modelfile_parameters_use_the_table_kinds() -> None:
    assert format_params({"num_ctx": ["2048"], "top_p": ["0.5"], "stop": ["a", "b"]}) == {
        "num_ctx": 2048,
        "top_p": 0.5,
        "stop": ["a", "b"],
    }
    with pytest.raises(OptionError, match="unknown parameter 'nope'"):
        format_params({"nope": ["1"]})


def test_num_ctx_zero_is_accepted_as_ollama_does() -> None:
    # A runner raises it to its minimum (RunnerOptions.normalized), as Ollama does.
    assert check_option("num_ctx", 0) == 0
    assert RunnerOptions(num_ctx=0).normalized(n_ctx_train=8192).num_ctx == 4
