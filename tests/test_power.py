"""One battery/power description (`PowerModel`): the profiles and the simulator's settings derive
from it, so they check the same figures and project the same drain as the energy-budget policy."""

from __future__ import annotations

import math

import pytest
from prp.runtime.policies import PIXEL3_LIKE_POWER, EnergyBudgetPolicy
from prp.runtime.power import PowerError, PowerModel
from prp.runtime.profiles import PROFILES, DeviceProfile
from prp.runtime.simulate import SimConfig, SimulationError

GOOD = {"capacity_mah": 1000.0, "voltage_v": 3.6, "baseline_w": 0.5, "inferences_per_s": 20.0}
BAD = [
    ("capacity_mah", 0.0),
    ("voltage_v", -1.0),
    ("baseline_w", -0.1),
    ("inferences_per_s", math.nan),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_every_description_refuses_the_same_bad_figure(name: str, value: float) -> None:
    with pytest.raises(PowerError, match=name):
        PowerModel(**{**GOOD, name: value})
    with pytest.raises(SimulationError, match=name):
        SimConfig(**{**GOOD, name: value})
    with pytest.raises(PowerError, match=name):
        DeviceProfile(
            **{**GOOD, name: value}, name="x", description="", inference_power_w=1.0, sources=""
        )


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profile_simulator_and_policy_share_one_power_model(profile: str) -> None:
    p = PROFILES[profile]
    config = SimConfig.from_profile(p, horizon_h=10.0)
    assert isinstance(p, PowerModel) and isinstance(config, PowerModel)
    assert config.power_model() == p.power_model()
    budget = EnergyBudgetPolicy({"a": 0.5}, config.power_model(), target_h=10.0)
    # The policy's projection is the simulator's drain: a full battery over the path's power.
    expected_h = config.capacity_j / (config.baseline_w + config.inference_w(0.5)) / 3600.0
    assert budget.hours_left("a", 100.0) == pytest.approx(expected_h)
    assert config.power_w(0.5) == p.power_w(0.5)
    if profile == "pixel3":
        assert PIXEL3_LIKE_POWER == p.power_model()
