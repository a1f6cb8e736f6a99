"""A profile kit: what a phone needs to measure a space's cost table itself (`prp-profile --kit`).

`prp-profile --out` times op programs on the machine it runs on. A phone runs no Python, so the
kit moves the lowering to the desktop and leaves only the timing to the phone: `ops.pte` is one
ExecuTorch program with one method per op signature of the space, plus the call-overhead and
layout-conversion programs the desktop profiler corrects with, each lowered exactly as
`device_profile.lower` lowers it (`program_module`, then prp-export's XNNPACK lowering); and
`kit.json` says which method is which (signature, input shape, uses), the warm-up and
repetition counts, the op that carries a path's one-off overhead, and the space. The Android
bridge's `OpProfiler` (Java, over any `InferenceEngine`: `ExecuTorchEngine` on a phone,
`NativeEngine` on a desktop) times every method and writes the table in the format
`--cost-model lut` reads, with the same corrections as `device_profile.assemble_table`.

The kit checks itself before it is written: every method of `ops.pte`, run by ExecuTorch's Python
runtime, computes what its PyTorch module computes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..runs import atomic_path, read_json, write_json
from ..spaces import SearchSpace, Shape
from ..supernet import Supernet
from .base import PROFILE_FORMAT, PROFILE_VERSION, ProfileError
from .programs import (
    CALL_OVERHEAD_SHAPE,
    CallOverhead,
    identity_convs,
    layout_shapes,
    op_programs,
    program_module,
    shape_key,
)
from .table import backend_versions, fold_target, space_json

KIT_FORMAT = "prp-profile-kit"
KIT_VERSION = 1
KIT_MANIFEST = "kit.json"
KIT_PROGRAM = "ops.pte"


@dataclass(frozen=True)
class KitMethod:
    """One method of the kit's program: its name, the module it computes and its input."""

    name: str
    module: nn.Module
    in_shape: Shape
    seed: int


def kit_methods(space: SearchSpace, seed: int = 0) -> tuple[list[KitMethod], dict[str, Any]]:
    """The methods of `space`'s kit and the `kit.json` entries describing them.

    The same programs and inputs `profile_space` measures: the call-overhead program, one and
    two identity convolutions per 4-D shape at an op's ends, and every op signature that computes
    something (free ones cost 0 and are listed, not run)."""
    torch.manual_seed(seed)
    supernet = Supernet(space).eval()
    programs = op_programs(supernet)
    methods = [KitMethod("call_overhead", CallOverhead(), CALL_OVERHEAD_SHAPE, seed)]
    layouts = []
    for k, shape in enumerate(layout_shapes(programs)):
        names = {}
        for label, count in (("one", 1), ("two", 2)):
            name = f"layout_{k}_{label}"
            # prp-profile times these with its default input seed, 0, whatever --seed is
            methods.append(KitMethod(name, identity_convs(shape[1], count), shape, 0))
            names[label] = name
        layouts.append({"shape": shape_key(shape), "in_shape": list(shape), **names})
    ops: list[dict[str, Any]] = []
    for sig, p in programs.items():
        if p.free:
            continue
        name = f"op_{len(ops)}"
        methods.append(KitMethod(name, p.module, p.in_shape, seed))
        ops.append(
            {
                "signature": sig,
                "method": name,
                "in_shape": list(p.in_shape),
                "out_shape": list(p.out_shape),
                "uses": p.uses,
                "fixed": p.fixed,
            }
        )
    entries = {
        "call_overhead": {"method": "call_overhead", "in_shape": list(CALL_OVERHEAD_SHAPE)},
        "layout_baselines": layouts,
        "ops": ops,
        "free_ops": sorted(s for s, p in programs.items() if p.free),
        "overhead_folded_into": fold_target(programs),
        "network_input": [1, *space.input_shape],
    }
    return methods, entries


def _example(method: KitMethod) -> Tensor:
    return torch.randn(method.in_shape, generator=torch.Generator().manual_seed(method.seed))


def write_program(methods: list[KitMethod], path: Path, tolerance: float) -> None:
    """Lower every method as `device_profile.lower` does, into one program at `path`, and check
    each method against its PyTorch module on its own input (max abs difference `tolerance`)."""
    from ..lowering import (
        drop_zero_terms,
        for_xnnpack,
        load_program,
        method_differences,
        write_pte,
    )

    modules = {m.name: program_module(m.module) for m in methods}
    examples = {m.name: _example(m) for m in methods}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        # Exported here, each with its own input shape (write_pte takes one example for all
        # methods, and applies these same two steps to a module it exports itself).
        exported = {
            name: drop_zero_terms(torch.export.export(for_xnnpack(m).eval(), (examples[name],)))
            for name, m in modules.items()
        }
        with atomic_path(path) as tmp:
            write_pte(exported, next(iter(examples.values())), tmp)
            program = load_program(tmp)
            if set(program.method_names) != set(modules):
                raise ProfileError(f"the kit's program lacks methods; {path} was not written")
            inputs = {name: [x] for name, x in examples.items()}
            for name, diff in method_differences(program, modules, inputs).items():
                if not diff <= tolerance:
                    raise ProfileError(
                        f"method {name} of the kit computes {diff:.3g} away from PyTorch (allowed "
                        f"{tolerance}); {path} was not written"
                    )


def _check_kit_dir(kit_dir: Path) -> None:
    """The kit's files may replace only an earlier kit's: never a file prp-profile did not
    write."""
    if kit_dir.exists() and not kit_dir.is_dir():
        raise ProfileError(f"--kit {kit_dir} exists and is not a folder; choose another --kit")
    manifest, program = kit_dir / KIT_MANIFEST, kit_dir / KIT_PROGRAM
    if manifest.exists():
        try:
            data = read_json(manifest)
        except Exception:  # noqa: BLE001 - unreadable is as foreign as anything else
            data = None
        if not isinstance(data, dict) or data.get("format") != KIT_FORMAT:
            raise ProfileError(
                f"{manifest} is not a prp-profile kit; prp-profile never overwrites other files: "
                f"choose another --kit"
            )
    elif program.exists():
        raise ProfileError(
            f"{program} exists but no {KIT_MANIFEST} says prp-profile wrote it; choose another "
            f"--kit"
        )


ProgressFn = Callable[[str], None]


def write_kit(
    space: SearchSpace,
    kit_dir: Path,
    warmup: int = 10,
    repeats: int = 50,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Write `space`'s profile kit into `kit_dir` (`ops.pte`, then `kit.json`, which records the
    program's sha256: a kit interrupted between the two is refused by the phone); returns
    `kit.json`."""
    from ..export import TOLERANCE

    if warmup < 0 or repeats < 1:
        raise ProfileError(f"--warmup must be >= 0 and --repeats >= 1, got {warmup}, {repeats}")
    kit_dir = Path(kit_dir)
    _check_kit_dir(kit_dir)
    methods, entries = kit_methods(space, seed)
    if progress is not None:
        progress(f"lowering {len(methods)} programs")
    program = kit_dir / KIT_PROGRAM
    write_program(methods, program, TOLERANCE)
    if progress is not None:
        progress("checked every method; writing kit.json")
    kit = {
        "format": KIT_FORMAT,
        "version": KIT_VERSION,
        "table_format": PROFILE_FORMAT,
        "table_version": PROFILE_VERSION,
        "space": space_json(space),
        "program": KIT_PROGRAM,
        "program_sha256": hashlib.sha256(program.read_bytes()).hexdigest(),
        "warmup": warmup,
        "repeats": repeats,
        "seed": seed,
        **entries,
        "provenance": {
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": backend_versions("executorch"),
            "machine": platform.machine(),
        },
    }
    write_json(kit_dir / KIT_MANIFEST, kit)
    return kit
