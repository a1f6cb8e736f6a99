"""`AdaptiveModel`: one loaded bundle, a policy and a battery; runs the path the policy picks."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import Backend, make_backend
from .battery import BatterySource, PsutilBattery, check_battery_pct
from .bundle import Bundle, BundleError
from .calibration import (
    Calibration,
    CalibrationError,
    calibration_from,
    default_calibration_file,
    load_calibration,
    manifest_sha256,
    save_calibration,
)
from .energy import EnergyMeter, find_meter
from .measured_costs import measured_policy
from .measuring import Recorder
from .policies import Context, Decision, Policy, PolicyError, policy_from_manifest
from .profiles import PIXEL3

log = logging.getLogger("prp.runtime")


class InputError(ValueError):
    """Input of the wrong shape or type; the message says what was expected."""


@dataclass(frozen=True)
class Switch:
    at_h: float
    from_path: str | None
    to_path: str
    reason: str
    battery_pct: float | None


@dataclass(frozen=True)
class Prediction:
    logits: np.ndarray  # [N, classes]
    path: str  # the one path that produced every row
    reason: str

    @property
    def labels(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


class AdaptiveModel:
    """Loads a bundle once (every path ready) and runs, per call, the path its policy picks.

    `predict` takes float32 NCHW input already normalised, or uint8 HWC images (N, H, W, 3) that
    it normalises with the manifest's mean and std. The path is chosen once per call under a
    lock, so concurrent calls during switches never mix paths within a call. `switch_to` pins a
    path by hand until `follow_policy()`. The policy is asked again whenever the battery reading
    changes and at least every `decide_every_s` seconds of the clock.

    Large batches run in chunks of at most `max_batch` images (one path for all of them), so
    memory stays that of `max_batch` images whatever the caller passes. `switches` keeps the
    last `max_switches` switches (oldest dropped first), so a long-running app's log stays
    bounded; `switch_count` counts them all.

    Self-calibration: with `measure` (the default) every backend call is timed into
    `recorder` (per path, warm-up excluded, bounded memory), and, with an energy meter
    (`energy_meter="auto"`: RAPL or a discharging battery where readable), windows of meter
    readings are kept for attributing energy to paths. `measured()` is the calibration so far,
    `save_calibration()` writes it. `calibration` is what the policy plans with: a
    `Calibration`, a calibration file, `"auto"` (this device's file for this bundle and backend
    in the user's data folder, where there is one) or None (the manifest's costs). A file that
    does not fit the bundle is refused with one line in the log (`calibration_note` keeps it)
    and the manifest's costs are used. A policy passed as an object is used as given.
    """

    def __init__(
        self,
        bundle: Bundle | str | Path,
        policy: Policy | str | None = None,
        battery: BatterySource | None = None,
        backend: str | Backend = "auto",
        clock: Callable[[], float] | None = None,
        decide_every_s: float = 1.0,
        max_batch: int = 256,
        max_switches: int = 1000,
        calibration: Calibration | str | Path | None = "auto",
        measure: bool = True,
        energy_meter: EnergyMeter | str | None = "auto",
        power_w: float = PIXEL3.inference_power_w,
    ) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
        if isinstance(max_switches, bool) or not isinstance(max_switches, int) or max_switches < 1:
            raise ValueError(f"max_switches must be an integer >= 1, got {max_switches!r}")
        self.max_batch = max_batch
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        manifest = self.bundle.data
        # A policy named here is checked before the backend loads (seconds for ExecuTorch).
        self._own_policy = policy is None or isinstance(policy, str)
        self._policy_name = policy if isinstance(policy, str) else None
        self.policy: Policy = (
            policy
            if policy is not None and not isinstance(policy, str)
            else policy_from_manifest(manifest, policy)
        )
        meter = find_meter() if energy_meter == "auto" else energy_meter
        if isinstance(meter, str):
            raise ValueError(f"energy_meter must be 'auto', None or a meter, got {meter!r}")
        self.battery: BatterySource = battery if battery is not None else PsutilBattery()
        self.backend: Backend = (
            backend if not isinstance(backend, str) else make_backend(self.bundle, backend)
        )
        self.power_w = power_w
        self.manifest_sha256 = manifest_sha256(self.bundle)
        self.recorder: Recorder | None = Recorder(self.bundle.ids, meter=meter) if measure else None
        self.calibration: Calibration | None = None
        self.calibration_note = "no calibration: the manifest's costs"
        start = time.monotonic()
        self._clock = clock or (lambda: (time.monotonic() - start) / 3600.0)
        spec = manifest["input"]
        self._n_classes = len(manifest["classes"])
        self._ids = frozenset(self.bundle.ids)
        self.input_shape = tuple(int(v) for v in spec["shape"][1:])  # C, H, W
        self.mean = np.asarray(spec["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(spec["std"], dtype=np.float32).reshape(1, -1, 1, 1)
        self._lock = threading.Lock()
        self._current: str | None = None
        self._pinned: str | None = None
        self._every_h = decide_every_s / 3600.0
        self._last_battery: float | None = None
        self._due_h = 0.0
        self._reason = ""
        self.switches: deque[Switch] = deque(maxlen=max_switches)
        self.switch_count = 0
        self._apply(self._find_calibration(calibration))
        self.decide()

    # ------------------------------------------------------------ calibration
    def _find_calibration(self, given: Calibration | str | Path | None) -> Calibration | None:
        """The calibration to plan with, or None (the note says why)."""
        if given is None or isinstance(given, Calibration):
            return given
        if given == "auto":
            path = default_calibration_file(self.bundle, self.backend.name, self.manifest_sha256)
            if not path.is_file():
                self.calibration_note = f"no calibration in {path}: the manifest's costs"
                return None
        else:
            path = Path(given)
        try:
            return load_calibration(path, self.bundle, self.manifest_sha256)
        except CalibrationError as e:
            self.calibration_note = f"{e}; using the manifest's costs"
            log.warning("%s", self.calibration_note)
            return None

    def _apply(self, calibration: Calibration | None) -> None:
        """Plan with `calibration` (None: the manifest's costs); the policy is rebuilt only
        where the model built it from the manifest's tables."""
        if calibration is not None and calibration.manifest_sha256 != self.manifest_sha256:
            self.calibration_note = (
                f"calibration of another bundle ({calibration.bundle}, manifest sha256 "
                f"{calibration.manifest_sha256[:16]}...) refused; using the manifest's costs"
            )
            log.warning("%s", self.calibration_note)
            calibration = None
        self.calibration = calibration
        if not self._own_policy:
            if calibration is not None:
                self.calibration_note = "calibration loaded, not used: the policy was given"
            return
        manifest = self.bundle.data
        if calibration is None:
            self.policy = policy_from_manifest(manifest, self._policy_name)
            return
        self.policy = measured_policy(manifest, calibration, self._policy_name)
        self.calibration_note = (
            f"measured costs ({calibration.backend}, {calibration.created}; energy: "
            f"{calibration.energy_source})"
        )

    def use_calibration(self, calibration: Calibration | None) -> None:
        """Plan with `calibration` from the next call on (`measured()`, say); None goes back
        to the manifest's costs."""
        with self._lock:
            self.calibration_note = "no calibration: the manifest's costs"
            self._apply(calibration)
            self._due_h = 0.0

    def measured(self, power_w: float | None = None) -> Calibration:
        """The calibration this model has measured so far (CalibrationError before every path
        has run past its warm-up). Energy: attributed from the meter where it can be, else
        median latency x `power_w` (default: the model's `power_w`)."""
        if self.recorder is None:
            raise CalibrationError("this model does not measure (measure=False)")
        watts = self.power_w if power_w is None else power_w
        return calibration_from(
            self.recorder, self.bundle, self.backend.name, watts, sha=self.manifest_sha256
        )

    def save_calibration(self, path: str | Path | None = None) -> Path:
        """Write `measured()` to `path`, by default this device's file for the bundle and
        backend in the user's data folder (where `calibration="auto"` finds it)."""
        target = (
            Path(path)
            if path is not None
            else default_calibration_file(self.bundle, self.backend.name, self.manifest_sha256)
        )
        return save_calibration(self.measured(), target)

    # ---------------------------------------------------------------- choosing
    @property
    def current(self) -> str:
        assert self._current is not None
        return self._current

    def _switch(self, to: str, reason: str, battery: float | None) -> None:
        if to == self._current:
            return
        record = Switch(self._clock(), self._current, to, reason, battery)
        self.switches.append(record)
        self.switch_count += 1
        self._current = to
        log.info("switch %s -> %s at %.3f h: %s", record.from_path, to, record.at_h, reason)

    def decide(self) -> Decision:
        """Ask the policy now (or honour a manual pin) and switch if it says so."""
        with self._lock:
            return self._decide_locked()

    def _read_battery(self) -> float | None:
        # A source of the app's own that reads NaN or 150 must not steer the policy silently.
        return check_battery_pct(self.battery.read(), f"{type(self.battery).__name__}.read()")

    def _decide_locked(self) -> Decision:
        battery = self._read_battery()
        now = self._clock()
        if self._pinned is not None:
            decision = Decision(self._pinned, "pinned by switch_to")
        else:
            decision = self.policy.decide(Context(battery, now, self._current))
        self._switch(decision.path, decision.reason, battery)
        self._last_battery, self._due_h = battery, now + self._every_h
        self._reason = decision.reason
        return decision

    def switch_to(self, path: str, reason: str = "manual") -> None:
        """Run `path` from now on, whatever the policy says, until `follow_policy()`."""
        if path not in self.bundle.ids:
            raise PolicyError(f"no path {path!r} in the bundle; paths are {self.bundle.ids}")
        with self._lock:
            self._pinned = path
            self._reason = f"pinned by switch_to ({reason})"
            self._switch(path, reason, self._read_battery())

    def follow_policy(self) -> None:
        """Let the policy choose again, from the next call on."""
        with self._lock:
            self._pinned = None
            self._due_h = 0.0

    # ---------------------------------------------------------------- running
    def _checked(self, batch: np.ndarray) -> np.ndarray:
        """`batch` as an (N, ...) array of a supported dtype and shape, N >= 1; no copy."""
        x = np.asarray(batch)
        c, h, w = self.input_shape
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4:
            raise InputError(
                f"input has shape {x.shape}; expected (N, {c}, {h}, {w}) float32 or "
                f"(N, {h}, {w}, {c}) uint8 images"
            )
        if x.dtype == np.uint8:
            if x.shape[1:] != (h, w, c):
                raise InputError(f"uint8 images must be (N, {h}, {w}, {c}), got {x.shape}")
        elif x.dtype != np.float32:
            raise InputError(
                f"input dtype {x.dtype} is not supported; pass float32 (normalised, NCHW) or "
                f"uint8 images (NHWC)"
            )
        elif x.shape[1:] != (c, h, w):
            raise InputError(f"float32 input must be (N, {c}, {h}, {w}), got {x.shape}")
        if len(x) == 0:
            raise InputError(f"input holds no images (shape {x.shape}); pass at least one")
        return x

    def _normalised(self, x: np.ndarray) -> np.ndarray:
        """float32 NCHW for the backend from a `_checked` array."""
        if x.dtype == np.uint8:
            x = x.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
            return np.ascontiguousarray((x - self.mean) / self.std, dtype=np.float32)
        if not np.isfinite(x).all():
            raise InputError("input contains NaN or infinite values")
        return np.ascontiguousarray(x)

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        """float32 NCHW for the backend, or InputError saying what was expected."""
        return self._normalised(self._checked(batch))

    def _run(self, path: str, x: np.ndarray) -> np.ndarray:
        """Logits of `path` for `_checked` input, `max_batch` images at a time: a backend's
        working memory grows with the batch (ONNX Runtime took 2.2 GB for 10,000 images in one
        call)."""
        n, recorder = self.max_batch, self.recorder
        parts = []
        for i in range(0, len(x), n):
            chunk = self._normalised(x[i : i + n])
            start = time.perf_counter()
            parts.append(self.backend.run(path, chunk))
            if recorder is not None:
                recorder.record(path, time.perf_counter() - start, len(chunk))
        logits = parts[0] if len(parts) == 1 else np.concatenate(parts)
        classes = self._n_classes
        if logits.shape != (len(x), classes):
            raise BundleError(
                f"{self.bundle.directory}: path {path} returned logits of shape {logits.shape} "
                f"for {len(x)} images, but the manifest lists {classes} classes; export the "
                f"bundle again"
            )
        return logits

    def predict(self, batch: np.ndarray) -> Prediction:
        """Logits of the path the policy picks now (one path for the whole batch)."""
        x = self._checked(batch)  # bad input is refused before the policy is asked
        path, reason = self._choose()
        return Prediction(self._run(path, x), path, reason)

    def _choose(self) -> tuple[str, str]:
        """The path for this call. The policy is asked again when the battery reading changed
        or `decide_every_s` has passed since it was last asked; otherwise the last decision
        stands (it depends on nothing else), which keeps a call's overhead to microseconds."""
        battery = self._read_battery()
        now = self._clock()
        with self._lock:
            if self._pinned is None and (battery != self._last_battery or now >= self._due_h):
                self._decide_locked()
            assert self._current is not None
            return self._current, self._reason

    def run_path(self, path: str, batch: np.ndarray) -> np.ndarray:
        """Logits of one named path, bypassing the policy (for tests and benchmarks)."""
        if path not in self._ids:
            raise PolicyError(f"no path {path!r} in the bundle; paths are {self.bundle.ids}")
        return self._run(path, self._checked(batch))
