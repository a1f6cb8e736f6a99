"""PRP-NAS on-device runtime: loads an exported bundle once and switches paths by battery level,
schedule or energy budget. Depends on numpy, psutil and one inference backend (ONNX Runtime, or
ExecuTorch, which brings torch); never on the trainer.
"""

from .battery import PsutilBattery, PushedBattery, SimulatedBattery, SysfsBattery, battery_source
from .bundle import Bundle, BundleError, load_manifest, validate_manifest
from .model import AdaptiveModel, InputError, Prediction, Switch
from .policies import (
    BatteryPolicy,
    Context,
    Decision,
    EnergyBudgetPolicy,
    FixedPolicy,
    PolicyError,
    PowerModel,
    SchedulePolicy,
    policy_from_manifest,
)

__version__ = "0.1.0"
__all__ = [
    "AdaptiveModel",
    "BatteryPolicy",
    "Bundle",
    "BundleError",
    "Context",
    "Decision",
    "EnergyBudgetPolicy",
    "FixedPolicy",
    "InputError",
    "PolicyError",
    "PowerModel",
    "Prediction",
    "PsutilBattery",
    "PushedBattery",
    "SchedulePolicy",
    "SimulatedBattery",
    "Switch",
    "SysfsBattery",
    "battery_source",
    "load_manifest",
    "policy_from_manifest",
    "validate_manifest",
]
