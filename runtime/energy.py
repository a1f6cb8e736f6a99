"""Energy meters: what the platform reports about the energy the device draws, as a running total
in joules.

Two Linux sources, both read from sysfs with plain file reads (no privileges asked for):

- `RaplMeter`: the RAPL package counters under `/sys/class/powercap` (`intel-rapl:0`, ...), in
  microjoules, each wrapping at its `max_energy_range_uj`. Since Linux 5.10 they are readable by
  root only on most distributions; an unreadable counter is no meter.
- `PowerSupplyMeter`: a battery of the power_supply class (`/sys/class/power_supply/BAT0`, ...)
  while it discharges: `power_now` (microwatts) where the driver has it, else `current_now`
  (microamperes) x `voltage_now` (microvolts). That is a power, not a counter, so the meter
  integrates its readings over time (trapezoids between readings). On AC power (status not
  `Discharging`) the battery reports what charges it, not what the device draws: no reading.

Android's BatteryManager (`BATTERY_PROPERTY_CURRENT_NOW`, `ENERGY_COUNTER`) is read by the host
app in Java (android_bridge/); a Python host can push its own meter (anything with `read_j`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

RAPL_ROOT = Path("/sys/class/powercap")
POWER_SUPPLY_ROOT = Path("/sys/class/power_supply")


class EnergyMeter(Protocol):
    """A running total of the energy the device has drawn."""

    @property
    def source(self) -> str:
        """What is read, for the calibration record (`rapl`, `power_supply:BAT0`, ...)."""
        ...

    def read_j(self) -> float | None:
        """Joules drawn since some fixed origin, or None where there is no reading now (the
        origin is the meter's own: only differences between readings mean anything)."""
        ...


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class RaplMeter:
    """Linux RAPL package counters (`<root>/intel-rapl:N/energy_uj`), summed over packages and
    unwrapped: each counter counts microjoules up to `max_energy_range_uj` and starts again at 0.
    Reads must come at least once per wrap period (about 60 s at 100 W on a 2^32 uJ range); the
    runtime reads every 0.1 s of calls."""

    files: tuple[Path, ...]
    ranges: tuple[int, ...]
    source: str = "rapl"
    _last: list[int] = field(default_factory=list, repr=False)
    _total_uj: int = 0

    @classmethod
    def find(cls, root: Path = RAPL_ROOT) -> RaplMeter | None:
        """The readable package-level zones under `root` (not their core/uncore/dram sub-zones,
        which a package already counts), or None."""
        files, ranges = [], []
        for zone in sorted(Path(root).glob("*-rapl:*")):
            if zone.name.count(":") != 1:
                continue
            now, top = _read_int(zone / "energy_uj"), _read_int(zone / "max_energy_range_uj")
            if now is None or top is None or top <= 0:
                continue
            files.append(zone / "energy_uj")
            ranges.append(top + 1)
        return cls(tuple(files), tuple(ranges)) if files else None

    def read_j(self) -> float | None:
        values = [_read_int(f) for f in self.files]
        if any(v is None for v in values):
            return None
        now = [int(v) for v in values if v is not None]
        if self._last:
            self._total_uj += sum(
                (n - s) % r for n, s, r in zip(now, self._last, self.ranges, strict=True)
            )
        self._last = now
        return self._total_uj * 1e-6


@dataclass
class PowerSupplyMeter:
    """A discharging battery's power (`power_now`, or `current_now` x `voltage_now`),
    integrated over time into joules. None while the battery is not discharging, or where a
    file cannot be read; the integral restarts after such a gap (no energy is made up for it)."""

    folder: Path
    clock: Callable[[], float] = time.monotonic
    _last: tuple[float, float] | None = field(default=None, repr=False)  # (time s, power W)
    _total_j: float = 0.0

    @property
    def source(self) -> str:
        return f"power_supply:{self.folder.name}"

    @classmethod
    def find(cls, root: Path = POWER_SUPPLY_ROOT) -> PowerSupplyMeter | None:
        """The first battery under `root` that reports a power, or None."""
        for supply in sorted(Path(root).glob("*")):
            try:
                kind = (supply / "type").read_text().strip()
            except OSError:
                continue
            if kind != "Battery":
                continue
            has_power = (supply / "power_now").is_file() or (
                (supply / "current_now").is_file() and (supply / "voltage_now").is_file()
            )
            if has_power:
                return cls(supply)
        return None

    def power_w(self) -> float | None:
        """The power the battery delivers now, W; None when it is not discharging."""
        try:
            status = (self.folder / "status").read_text().strip()
        except OSError:
            return None
        if status != "Discharging":
            return None
        micro_w = _read_int(self.folder / "power_now")
        if micro_w is not None:
            watts = abs(micro_w) * 1e-6  # some drivers sign the discharge negative
        else:
            micro_a = _read_int(self.folder / "current_now")
            micro_v = _read_int(self.folder / "voltage_now")
            if micro_a is None or micro_v is None:
                return None
            watts = abs(micro_a) * 1e-6 * abs(micro_v) * 1e-6
        return watts if math.isfinite(watts) else None

    def read_j(self) -> float | None:
        now, watts = self.clock(), self.power_w()
        if watts is None:
            self._last = None
            return None
        if self._last is not None:
            then, before = self._last
            self._total_j += 0.5 * (watts + before) * max(now - then, 0.0)
        self._last = (now, watts)
        return self._total_j


def find_meter(
    rapl_root: Path = RAPL_ROOT, power_supply_root: Path = POWER_SUPPLY_ROOT
) -> EnergyMeter | None:
    """The energy meter this machine offers: RAPL where readable (it counts the processor
    package, what inference spends), else a battery's power, else None."""
    rapl = RaplMeter.find(rapl_root)
    if rapl is not None:
        return rapl
    return PowerSupplyMeter.find(power_supply_root)
