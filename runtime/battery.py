"""Battery sources: where the runtime reads the battery level (percent, or None when unknown)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol


class BatterySource(Protocol):
    def read(self) -> float | None:
        """Battery level in percent (0-100), or None where there is no battery to read."""
        ...


class PsutilBattery:
    """The OS battery via psutil; None on machines without one (desktops, CI)."""

    def read(self) -> float | None:
        import psutil

        try:
            info = psutil.sensors_battery()
        except (AttributeError, NotImplementedError, OSError):
            return None
        return None if info is None else float(info.percent)


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
            return max(0.0, min(100.0, float(f.read_text().strip())))
        except (OSError, ValueError):
            return None


class PushedBattery:
    """A level the host app pushes (Android's BatteryManager, say); thread-safe."""

    def __init__(self, pct: float | None = None) -> None:
        self._lock = threading.Lock()
        self._pct = pct

    def push(self, pct: float | None) -> None:
        if pct is not None and not 0.0 <= pct <= 100.0:
            raise ValueError(f"battery level must be within 0-100 %, got {pct}")
        with self._lock:
            self._pct = pct

    def read(self) -> float | None:
        with self._lock:
            return self._pct


class SimulatedBattery:
    """A battery of `capacity_j` joules that the simulator drains."""

    def __init__(self, capacity_j: float, pct: float = 100.0) -> None:
        if capacity_j <= 0:
            raise ValueError(f"capacity must be > 0 J, got {capacity_j}")
        self.capacity_j = capacity_j
        self.energy_j = capacity_j * pct / 100.0
        self.drawn_j = 0.0

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
        return PushedBattery(float(name))
    except ValueError:
        raise ValueError(
            f"unknown battery source {name!r}; use psutil, sysfs or a level in percent"
        ) from None
