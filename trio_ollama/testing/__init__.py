"""Test and simulation support, shipped in the package as `trio.testing` is: fake models (real
GGUF facts, no weights) and fake runners served in-process, for the real scheduler on
`trio.testing.MockClock`; and the simulator's direct runners, which skip the protocol.
"""

from trio_ollama.testing.direct import SimulatedRunners
from trio_ollama.testing.simulation import FakeRunners, fake_info, fake_model

__all__ = ["FakeRunners", "SimulatedRunners", "fake_info", "fake_model"]
