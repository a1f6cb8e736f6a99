"""Command-line entry points of the trainer, one module per command: `info` (prp-info), `train`
(prp-train), `export` (prp-export), `evaluate` (prp-eval), `pretrain` (prp-pretrain) and
`fit_costs` (prp-fit-costs); `console` is the console they print to. (prp-profile is
`device_profile.cli`.)
"""

from .evaluate import eval_app
from .export import export_app
from .fit_costs import fit_costs_app
from .info import info_app
from .pretrain import pretrain_app
from .train import latest_run_dir, new_run_dir, train_app

__all__ = [
    "eval_app",
    "export_app",
    "fit_costs_app",
    "info_app",
    "latest_run_dir",
    "new_run_dir",
    "pretrain_app",
    "train_app",
]
