"""Test and simulation support, shipped in the package as `trio.testing` is: fake models (real
GGUF facts, no weights) and fake runners served in-process, for the real scheduler on
`trio.testing.MockClock`.
"""

from trio_ollama.testing.simulation import FakeRunners, fake_info, fake_model

__all__ = ["FakeRunners", "fake_info", "fake_model"]
