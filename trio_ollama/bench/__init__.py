"""The load generator: any Ollama- or OpenAI-compatible server driven by a described workload,
measured per request and summarised (docs/benchmarks.md). Also `trio-ollama bench`.

    spec = spec_from({"target": "http://127.0.0.1:11434", "load": {"concurrency": [1, 4]}})
    results: list[StepResult] = []
    await run_spec(spec, results)
    print(table([("run", result_json(spec, results))]))
"""

from trio_ollama.bench.client import Outcome, run_one
from trio_ollama.bench.drive import StepResult, run_spec
from trio_ollama.bench.plan import Planned, Step, read_trace, steps, write_trace
from trio_ollama.bench.report import read_result, result_json, summarize, table, write_result
from trio_ollama.bench.spec import Spec, SpecError, load_spec, spec_from

__all__ = [
    "Outcome",
    "Planned",
    "Spec",
    "SpecError",
    "Step",
    "StepResult",
    "load_spec",
    "read_result",
    "read_trace",
    "result_json",
    "run_one",
    "run_spec",
    "spec_from",
    "steps",
    "summarize",
    "table",
    "write_result",
    "write_trace",
]
