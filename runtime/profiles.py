"""Device profiles for the battery simulator, as data.

A profile is what the simulator needs to know about a device besides the bundle: its battery, what
the device draws while the app runs apart from inference (the baseline), how often the app infers,
and the power of the processor while it infers (used only where energy per inference is measured
here as latency x power). Every figure says where it comes from; the stated assumptions are not
measurements and are meant to be overridden from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from .power import PowerModel


class ProfileError(ValueError):
    """An unknown profile name."""


@dataclass(frozen=True)
class DeviceProfile(PowerModel):
    """A named device: its battery and workload (`PowerModel`'s fields), what its processor draws
    while inferring, and where the figures come from."""

    name: str
    description: str
    inference_power_w: float  # processor power while inferring, for --energy measured
    sources: str


PIXEL3 = DeviceProfile(
    name="pixel3",
    description="Pixel-3-like phone running an always-on camera classification app",
    # Capacity: Google's published Pixel 3 battery, 2,915 mAh. Voltage: 3.85 V nominal for its
    # Li-ion cell (a common nominal figure for phone cells of that generation; not measured).
    capacity_mah=2915.0,
    voltage_v=3.85,
    # Baseline: assumption, not a measurement. A phone with the screen on and a camera preview
    # running draws on the order of 1 W (the runtime's PIXEL3_LIKE_POWER is this profile's).
    baseline_w=1.0,
    # Workload: camera frames at 30 per second, each classified once (the paper's always-on app).
    inferences_per_s=30.0,
    # Inference power: assumption, not a measurement. A 2018 flagship SoC's big CPU cores draw on
    # the order of 1-2 W under a sustained single-model load; 1.5 W is used. Only --energy
    # measured uses it (latency measured on this machine times this power).
    inference_power_w=1.5,
    sources="capacity: Google Pixel 3 spec (2,915 mAh); voltage, baseline and inference power: "
    "stated assumptions (3.85 V nominal, ~1 W screen-on camera baseline, 1.5 W inferring)",
)

PROFILES: dict[str, DeviceProfile] = {p.name: p for p in (PIXEL3,)}


def get_profile(name: str) -> DeviceProfile:
    """The profile called `name`, or ProfileError listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ProfileError(
            f"unknown device profile {name!r}; profiles are: {', '.join(sorted(PROFILES))}"
        ) from None
