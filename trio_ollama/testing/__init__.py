"""Test and simulation support, shipped in the package as `trio.testing` is: fake models (real
GGUF facts, no weights) and fake runners served in-process, for the real scheduler on
`trio.testing.MockClock`; simulated devices; and the simulator's direct runners, which skip the
protocol. docs/api.md has an example.
"""

from trio_ollama.scheduler.devices import FakeDevices
from trio_ollama.testing.direct import SimulatedRunners
from trio_ollama.testing.simulation import FakeRunners, fake_info, fake_model

__all__ = ["FakeDevices", "FakeRunners", "SimulatedRunners", "fake_info", "fake_model"]
