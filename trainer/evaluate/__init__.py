"""Ranking quality of a trained NB201 supernet against NAS-Bench-201 + HW-NAS-Bench ground truth.

For K architectures that never fed the training signal (and that the pruned supernet can still
run), the supernet's accuracy estimates and the table's true accuracies are each combined with the
same true cost column into Pareto ranks; Kendall's tau-b between the two rankings is the paper's
measure (section 3.1). Also: tau-b of accuracy alone, the hypervolume of the run's front (priced
with true values) over that of the true front, and where the run's picks sit in the true ranking.

Reference point for both hypervolumes (documented, the same for all runs of a table): accuracy
= the lowest true accuracy in the table, cost = the highest cost in the table's column.

Every evaluation also ranks the same architectures with free baselines (DESIGN: estimates must
earn their keep): params and MACs of the project's op tracing, synflow and NASWOT on freshly
initialised weights (`proxies`), and their log-rank combination `free` (params + synflow +
NASWOT), each used as the accuracy estimate exactly as the supernet's are; and the combination
`weights+free` (shared-weight accuracy + the same three), which must beat `free` for the
shared weights to count as adding information. A paired bootstrap over the K architectures
gives the interval of every difference. No estimator reads the table.

Modules, one concern each: `architectures` (the architectures a run is evaluated on and its
shared-weight estimates), `baselines` (free baseline scores, cached, and their paired comparison
with the run), `report` (the baselines section, verdicts, the rank plot) and `evaluation`
(`evaluate_run`, which writes RUN/eval_nb201.json).
"""

from .architectures import (
    alpha_estimators,
    estimate_paths,
    evaluation_device,
    true_front_hypervolume,
    unseen_live_pool,
)
from .baselines import (
    ProxyCache,
    baseline_comparison,
    cached_free_scores,
    estimator_scores,
    proxy_settings,
    recorded_free_scores,
    remember_free_scores,
)
from .evaluation import PROTOCOLS, banded_architectures, evaluate_run
from .report import (
    COMBINATIONS,
    EVAL_FILE,
    EVAL_LOG,
    adds_information,
    baselines_section,
    plot_ranks,
    read_evaluation,
    run_estimator_verdict,
)

__all__ = [
    "COMBINATIONS",
    "EVAL_FILE",
    "EVAL_LOG",
    "PROTOCOLS",
    "ProxyCache",
    "adds_information",
    "alpha_estimators",
    "banded_architectures",
    "baseline_comparison",
    "baselines_section",
    "cached_free_scores",
    "estimate_paths",
    "estimator_scores",
    "evaluate_run",
    "evaluation_device",
    "plot_ranks",
    "proxy_settings",
    "read_evaluation",
    "recorded_free_scores",
    "remember_free_scores",
    "run_estimator_verdict",
    "true_front_hypervolume",
    "unseen_live_pool",
]
