"""Battery-drain simulation: a simulated day of an always-on app, one line per switching scenario.

The device is a battery of `capacity_mah x voltage_v` joules that drains at a baseline power (the
device itself) plus `inferences_per_s x energy_mj` of the path that runs (the app). Energy per
inference comes from the manifest (`energy_mj`, priced on its cost device) or is measured here as
the latency of each path through the real backend times a stated processor power.

Scenarios run side by side over the horizon (24 h by default), each driven by the same policy
objects the runtime uses (`policy_from_manifest`): worst (the most accurate path only), best (the
cheapest only), the paper's adequate usage (the manifest's schedule), battery thresholds with
hysteresis, and the energy budget targeting the whole horizon.

Arithmetic mode (`simulate`) steps at `step_s` (1 s) but asks the policy only at the steps where
its answer can change: between two such steps every input its choice depends on stays the same
(the slot of the schedule, which battery thresholds the level is above, which paths the budget can
still afford), which numpy finds for a whole run of steps at once. The battery trajectory and
every decision are the same as asking at every step (`every_step=True`, which the tests compare).

Real mode (`simulate_real`) drives `AdaptiveModel` itself, with a simulated clock and a
`SimulatedBattery`, on real inputs through a real backend, drains the battery by the path each
prediction actually ran, and checks the switches the model logged against arithmetic mode.

Modules: `config` (the settings: a `PowerModel` plus horizon and step), `scenarios` (the
scenarios and their energies), `engine` (arithmetic mode), `real` (measured energies and real
mode), `report` (summary.json, timeline.csv, battery.png, tables) and `cli` (`prp-simulate`).
"""

from .cli import load_images, main, simulate_app
from .config import ACCURACY_KEY, ENERGY_SOURCES, SimConfig, SimulationError
from .engine import ScenarioRun, Segment, SimSwitch, Simulation, run_scenario, simulate
from .real import (
    Measured,
    RealRun,
    SimulatedClock,
    measure_energies,
    sample_images,
    simulate_real,
)
from .report import DEFINITIONS, plot_png, print_summary, summarise, timeline_csv, write_outputs
from .scenarios import Scenario, manifest_energies, scenarios_for, with_energies

__all__ = [
    "ACCURACY_KEY",
    "DEFINITIONS",
    "ENERGY_SOURCES",
    "Measured",
    "RealRun",
    "Scenario",
    "ScenarioRun",
    "Segment",
    "SimConfig",
    "SimSwitch",
    "Simulation",
    "SimulatedClock",
    "SimulationError",
    "load_images",
    "main",
    "manifest_energies",
    "measure_energies",
    "plot_png",
    "print_summary",
    "run_scenario",
    "sample_images",
    "scenarios_for",
    "simulate",
    "simulate_app",
    "simulate_real",
    "summarise",
    "timeline_csv",
    "with_energies",
    "write_outputs",
]
