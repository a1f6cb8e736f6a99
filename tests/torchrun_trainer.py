"""A torchrun entry point for tests/test_distributed.py: the real `Trainer` on the tiny preset in
every rank, with probes the command line has no option for. Each rank writes
`<probe>/rank<k>.json`: alpha right after each alpha update (before anything is broadcast) and
a digest of the weights W after each epoch. `--crash-rank R --crash-epoch E` makes rank R
raise at the start of epoch E, as a rank that fails on its own would.

    python -m torch.distributed.run --nproc-per-node 2 tests/torchrun_trainer.py RUN PROBE
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from prp.trainer import distributed
from prp.trainer.config import preset
from prp.trainer.train import Trainer


class InjectedCrash(RuntimeError):
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("probe", type=Path)
    parser.add_argument("--crash-rank", type=int, default=-1)
    parser.add_argument("--crash-epoch", type=int, default=-1)
    args = parser.parse_args()
    probe: dict[str, Any] = {"alpha": [], "weights": []}

    def dump() -> None:
        path = args.probe / f"rank{distributed.rank()}.json"
        path.write_text(json.dumps(probe))

    class Probed(Trainer):
        def update_alpha(self, epoch: int) -> dict[str, Any]:
            record = super().update_alpha(epoch)
            probe["alpha"].append(self.supernet.alpha.detach().cpu().numpy().tolist())
            dump()
            return record

        def train_epoch(self, epoch: int) -> dict[str, Any]:
            if epoch == args.crash_epoch and distributed.rank() == args.crash_rank:
                raise InjectedCrash(f"injected crash of rank {args.crash_rank} at epoch {epoch}")
            return super().train_epoch(epoch)

    def after_epoch(done: int) -> None:
        digest = hashlib.sha256()
        for p in trainer.supernet.weight_parameters():
            digest.update(p.detach().cpu().numpy().tobytes())
        probe["weights"].append(digest.hexdigest())
        dump()

    trainer = Probed(preset("tiny"), args.run_dir)
    trainer.run(after_epoch=after_epoch)
    distributed.cleanup()


if __name__ == "__main__":
    main()
