"""Battery sources: where the runtime reads the battery level (percent, or None when unknown)."""

from __future__ import annotations

import math
import numbers
import threading
from pathlib import Path
from typing import Protocol


class BatteryError(ValueError):
    """A battery level that is not a number within 0-100 %; the message gives the value."""


def check_battery_pct(value: object, source: str = "battery level") -> float | None:
    """`value` as a float percent, None kept as "no reading"; BatteryError for anything else.

    The one check every battery source, the CLI and the policies share: a real number (not a
    bool or a string), finite, within 0-100. NaN in particular must never reach a policy: every
    comparison with it is false, so a threshold ladder silently falls through to its cheapest path.
    """
    if value is None:
        return None
    if type(value) is float and 0.0 <= value <= 100.0:  # the common case, per predict call
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BatteryError(
            f"{source} must be a number within 0-100 %, got {type(value).__name__} {value!r}"
        )
    pct = float(value)
    if not (math.isfinite(pct) and 0.0 <= pct <= 100.0):
        raise BatteryError(f"{source} must be within 0-100 %, got {pct}")
    return pct


class BatterySource(Protocol):
    def read(self) -> float | None:
        """Battery level in percent (0-100), or None where there is no battery to read."""
        ...


def _reading_or_none(value: object) -> float | None:
    """A sensor's reading, or None (unknown) where the OS reports something that is no level."""
    try:
        return check_battery_pct(value)
    except BatteryError:
        return None


class PsutilBattery:
    """The OS battery via psutil; None on machines without one (desktops, CI)."""

    def read(self) -> float | None:
        import psutil

        try:
            info = psutil.sensors_battery()
        except (AttributeError, NotImplementedError, OSError):
            return None
        return None if info is None else _reading_or_none(info.percent)


class SysfsBattery:
    """Linux `/sys/class/power_supply/<name>/capacity` (the first battery found by default)."""

    def __init__(self, root: str | Path = "/sys/class/power_supply", name: str | None = None):
        self.root = Path(root)
        self.name = name

    def _capacity_file(self) -> Path | None:
        if self.name:
            f = self.root / self.name / "capacity"
            return f if f.is_file() else None
        for supply in sorted(self.root.glob("*")):
            kind = supply / "type"
            if kind.is_file() and kind.read_text().strip() == "Battery":
                f = supply / "capacity"
                if f.is_file():
                    return f
        return None

    def read(self) -> float | None:
        f = self._capacity_file()
        if f is None:
            return None
        try:
            value = float(f.read_text().strip())
        except (OSError, ValueError):
            return None
        # Some drivers report a little over 100 % when full; anything not finite is no reading.
        return _reading_or_none(max(0.0, min(100.0, value)) if math.isfinite(value) else None)


class PushedBattery:
    """A level the host app pushes (Android's BatteryManager, say); thread-safe."""

    def __init__(self, pct: float | None = None) -> None:
        self._lock = threading.Lock()
        self._pct = check_battery_pct(pct, "pushed battery level")

    def push(self, pct: float | None) -> None:
        checked = check_battery_pct(pct, "pushed battery level")
        with self._lock:
            self._pct = checked

    def read(self) -> float | None:
        with self._lock:
            return self._pct


class SimulatedBattery:
    """A battery of `capacity_j` joules that the simulator drains."""

    def __init__(self, capacity_j: float, pct: float = 100.0) -> None:
        if not (isinstance(capacity_j, numbers.Real) and math.isfinite(capacity_j)) or (
            capacity_j <= 0
        ):
            raise BatteryError(f"capacity must be a finite number > 0 J, got {capacity_j!r}")
        start = check_battery_pct(pct, "starting battery level")
        if start is None:
            raise BatteryError("a simulated battery needs a starting level in percent, got None")
        self.capacity_j: float = float(capacity_j)
        self.energy_j: float = self.capacity_j * start / 100.0
        self.drawn_j: float = 0.0

    def drain(self, joules: float) -> float:
        """Take `joules` (no more than is left); returns what was taken."""
        taken = min(max(joules, 0.0), self.energy_j)
        self.energy_j -= taken
        self.drawn_j += taken
        return taken

    def read(self) -> float | None:
        return 100.0 * self.energy_j / self.capacity_j


def battery_source(name: str) -> BatterySource:
    """`psutil`, `sysfs`, or a fixed level such as `55` (percent)."""
    if name == "psutil":
        return PsutilBattery()
    if name == "sysfs":
        return SysfsBattery()
    try:
        level = float(name)
    except ValueError:
        raise BatteryError(
            f"unknown battery source {name!r}; use psutil, sysfs or a level in percent"
        ) from None
    return PushedBattery(check_battery_pct(level, f"--battery {name}"))
