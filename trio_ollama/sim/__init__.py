"""The real scheduler in virtual time: a load generator's spec (`trio_ollama.bench`) run against
`trio_ollama.scheduler.Scheduler` itself, with fake runners and simulated devices on
`trio.testing.MockClock`. An hour of traffic takes seconds, and the results have the load
generator's schema, so `trio-ollama bench compare` plots real and simulated runs together.

    machine = Machine(models={"big": ModelProfile(size_gib=8, load_seconds=20)})
    results = simulate(spec, machine)

What is simulated (docs/simulation.md): each model's size (the scheduler's real memory estimate
plans it), load time, decode speed, how a step slows with the batch, prompt processing, and
system RAM and GPUs whose free memory follows loads and unloads. `--calibrate` measures a
model's figures through the real runner on this machine.
"""

from trio_ollama.sim.machine import Machine, ModelProfile, load_machine
from trio_ollama.sim.run import simulate

__all__ = ["Machine", "ModelProfile", "load_machine", "simulate"]
