"""Shared fixtures. Real data comes from the project's shared folder (never the network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PRP_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """A file of the shared reference data; skipped where it is absent, unless CI requires it."""
    path = SHARED_DATA / relative
    if not path.is_file():
        message = f"shared data file {path} not found (set PRP_SHARED_DATA to the data folder)"
        if os.environ.get("PRP_REQUIRE_SHARED_DATA"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True, scope="session")
def user_data_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime finds this device's calibrations in the user's data folder
    (`$PRP_DATA_DIR`); tests get an empty one of their own, never the user's."""
    folder = tmp_path_factory.mktemp("prp-data")
    os.environ["PRP_DATA_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def nb201_csv() -> Path:
    return shared_file("nasbench201/nb201_cifar10_hw.csv")


@pytest.fixture(scope="session")
def fbnet_lut_json() -> Path:
    return shared_file("fbnet/hwnasbench_fbnet_op_metrics.json")


@pytest.fixture(scope="session")
def data():
    """The embedded default data at the tiny preset's size, as the tiny test runs train on
    (read once per session; a module may define its own `data` instead)."""
    from prp.trainer.config import preset
    from prp.trainer.datasets import load_dataset

    return load_dataset("default", limit_per_class=preset("tiny").limit_per_class)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, data) -> Path:
    """A run of the tiny preset really trained on `data`, front written: trained once per
    session. Modules take a copy of it (`copy_of_tiny_run`), never the folder itself."""
    from prp.trainer.config import preset
    from prp.trainer.train import Trainer

    d = tmp_path_factory.mktemp("tiny-run") / "tiny"
    trainer = Trainer(preset("tiny"), d, data=data)
    trainer.write_front(trainer.run())
    return d


def copy_of_tiny_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A module's own copy of the session's tiny run (tests may write into it)."""
    import shutil

    return Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("run") / "tiny"))
