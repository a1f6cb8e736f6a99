"""Loading a trained run for export: its pruned supernet, its front, and the paths to export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import ExportError, PRPError
from ..runs import CHECKPOINT, CONFIG, FRONT, one_line, read_checkpoint, read_config, read_json
from ..search import PathMetrics, chance_accuracy, select_along_front
from ..spaces import Path as ArchPath
from ..spaces import get_space
from ..supernet import Supernet


@dataclass
class LoadedRun:
    run_dir: Path
    cfg: TrainConfig
    supernet: Supernet
    front: list[PathMetrics]
    front_data: dict[str, Any]
    fed_training: set[ArchPath]  # paths whose accuracy fed the alpha loss or pruning


def _front_field(obj: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    """`obj[key]`, which must be a `kind`; a one-line error naming the key otherwise."""
    if not isinstance(obj, dict) or key not in obj:
        raise ExportError(f"{where} lacks {key!r}")
    if not isinstance(obj[key], kind) or isinstance(obj[key], bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        raise ExportError(
            f"{where}[{key!r}] is a {type(obj[key]).__name__}, not a "
            f"{' or '.join(k.__name__ for k in kinds)}"
        )
    return obj[key]


def _read_front(d: Path) -> tuple[dict[str, Any], int, list[PathMetrics]]:
    """`front.json` of run `d`: its data, the number of classes and the front, every field the
    export reads checked first so that a damaged file gets one line, not a traceback."""
    data = read_json(d / FRONT)
    where = f"{d / FRONT}"
    try:
        space_config = _front_field(data, "space_config", where, dict)
        num_classes = int(_front_field(space_config, "num_classes", f"{where} space_config", int))
        front = []
        for k, p in enumerate(_front_field(data, "paths", where, list)):
            at = f"{where} paths[{k}]"
            front.append(
                PathMetrics(
                    tuple(int(i) for i in _front_field(p, "path", at, list)),
                    tuple(str(o) for o in _front_field(p, "ops", at, list)),
                    str(_front_field(p, "key", at, str)),
                    float(_front_field(p, "accuracy", at, (int, float))),
                    float(_front_field(p, "cost", at, (int, float))),
                    int(_front_field(p, "pareto_rank", at, int)),
                )
            )
    except ExportError as e:
        raise ExportError(
            f"{e}: the file is damaged; rerun `prp-train --resume --out {d}` to write it again"
        ) from None
    except (TypeError, ValueError) as e:
        raise ExportError(
            f"{where} is damaged ({one_line(e)}); rerun `prp-train --resume --out {d}` to write "
            f"it again"
        ) from None
    return data, num_classes, front


def load_run(run_dir: str | Path) -> LoadedRun:
    """The trained (pruned) supernet of a run and its front, with clear errors when incomplete,
    damaged or not to be trusted (the checkpoint is read with the weights-only unpickler)."""
    d = Path(run_dir)
    if not (d / CONFIG).is_file():
        raise ExportError(f"{d} is not a training run (no {CONFIG}); train one with prp-train")
    if not (d / FRONT).is_file():
        raise ExportError(
            f"run {d} has no {FRONT}: its training did not finish; run "
            f"`prp-train --resume --out {d}` first"
        )
    if not (d / CHECKPOINT).is_file():
        raise ExportError(f"run {d} has no {CHECKPOINT}; the run directory is incomplete")
    cfg = read_config(d)
    front_data, num_classes, front = _read_front(d)
    space = get_space(
        cfg.space, size=cfg.space_size, **{**cfg.space_overrides, "num_classes": num_classes}
    )
    supernet = Supernet(space)
    state = read_checkpoint(d / CHECKPOINT)  # refuses anything but tensors and plain data
    try:
        mask = state["op_mask"]
        if tuple(mask.shape) != tuple(supernet.op_mask.shape):
            raise ValueError(
                f"op_mask is {tuple(mask.shape)}, the supernet's {tuple(supernet.op_mask.shape)}"
            )
        for s in range(space.num_slots):
            for op in supernet.live_ops(s):
                if not bool(mask[s, op]):
                    supernet.prune(s, op)
        supernet.load_state_dict(state["supernet"])
        fed = {tuple(int(i) for i in p) for p, _ in state["evaluated"]}
        fed |= {tuple(int(i) for i in p) for p, _ in state["targets"]}
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as e:
        raise ExportError(
            f"checkpoint of run {d} does not fit its config.json ({one_line(e)}); it is damaged "
            f"or from another run: restore it from a backup or train again"
        ) from None
    return LoadedRun(d, cfg, supernet.eval(), front, front_data, fed)


def choose_paths(run: LoadedRun, top: int, names: Sequence[str] | None = None) -> list[PathMetrics]:
    """The paths to export, most accurate first: `names` (encoded paths) or `top` picks."""
    space = run.supernet.space
    if names:
        by_key = {m.key: m for m in run.front}
        chosen = []
        for name in names:
            try:
                path = run.supernet.validate(space.decode(name))
            except PRPError as e:
                raise ExportError(f"cannot export path {name!r}: {e}") from None
            key = space.encode(path)
            chosen.append(
                by_key.get(key)
                or PathMetrics(path, space.op_names(path), key, float("nan"), float("nan"), 0)
            )
        if len({m.path for m in chosen}) != len(chosen):
            raise ExportError("--paths names the same path twice")
    else:
        if top < 1:
            raise ExportError(f"--top must be at least 1, got {top}")
        if top > len(run.front):
            raise ExportError(
                f"--top {top} is more than the {len(run.front)} paths of run "
                f"{run.run_dir}'s front; ask for at most {len(run.front)}"
            )
        floor = chance_accuracy(space.num_classes)
        usable = sum(m.accuracy > floor for m in run.front)
        if top > usable:
            raise ExportError(
                f"--top {top}: only {usable} of the {len(run.front)} paths of run "
                f"{run.run_dir}'s front beat chance accuracy ({floor:.1f} %); ask for at most "
                f"{usable}, or name paths with --paths"
            )
        chosen = [m for _, m in select_along_front(run.front, top, floor)]
    return chosen
