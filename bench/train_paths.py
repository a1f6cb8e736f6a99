"""The record of a `prp-train-paths` run: how long it trained, how fast, in how much memory, and
where each path's held-out accuracy stands after every epoch (read from the run's own log; the
run may still be going).

    python bench/train_paths.py runs/nb201-edgegpu-paths [--name train_paths]

Writes bench/results/<name>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from common import print_table, write_record
from prp.trainer.runs import read_checkpoint
from prp.trainer.spaces import get_space


def summary(run: Path) -> dict[str, Any]:
    recipe = json.loads((run / "paths.json").read_text())
    space = get_space(recipe["space"], size="real", **recipe["space_overrides"])
    order = read_checkpoint(run / "checkpoint.pt")["path_training"]["paths"]
    keys = [space.encode(p) for p in order]
    log = run / "log.jsonl"
    epochs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    epochs = [e for e in epochs if e.get("event") == "epoch"]
    last = epochs[-1] if epochs else {}
    train_s = float(last.get("train_seconds", 0.0))
    measure_s = sum(float(e.get("measure_seconds", 0.0)) for e in epochs)
    return {
        "run": str(run),
        "recipe": recipe,
        "epochs_done": len(epochs),
        "epochs": recipe["epochs"],
        "finished": (run / "front.json").exists(),
        "train_hours": train_s / 3600,
        "measure_hours": measure_s / 3600,
        "images": last.get("images", 0),
        # images through the whole sandwich step (every path sees each image once)
        "images_per_s": last.get("images", 0) / train_s if train_s else None,
        "threads": last.get("threads"),
        "peak_rss_mib": max((float(e.get("peak_rss_mib", 0)) for e in epochs), default=None),
        # the log lists each epoch's accuracies in training order (the largest path first)
        "val_accuracy": {key: [e["val_accuracy"][k] for e in epochs] for k, key in enumerate(keys)},
        "history": epochs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a prp-train-paths run folder")
    parser.add_argument("--name", default="train_paths", help="record name")
    args = parser.parse_args()
    record = summary(args.run)
    write_record(args.name, record)
    history = record["history"]
    rows = [[str(e["epoch"] + 1)] + [f"{a:.1f}" for a in e["val_accuracy"]] for e in history]
    print_table(
        f"{args.run}: held-out accuracy % per epoch "
        f"({record['epochs_done']} of {record['epochs']}, "
        f"{record['train_hours']:.2f} h training, {record['images_per_s'] or 0:.1f} images/s, "
        f"peak {record['peak_rss_mib']} MiB)",
        ["epoch"] + list(record["val_accuracy"]),
        rows,
    )


if __name__ == "__main__":
    main()
