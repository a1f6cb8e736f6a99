"""Every bundle the project ships under exported/: what a user who deploys it relies on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prp.runtime import Bundle
from prp.runtime.policies import passed_pairs

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (ROOT / "exported").iterdir() if (p / "manifest.json").is_file())
MAX_BYTES = 25 * 10**6  # a shipped bundle, ONNX graphs included
LOGS = {"export.log"}  # prp-export's third-party log, never committed (.gitignore)


def test_the_project_ships_a_bundle() -> None:
    assert SHIPPED


@pytest.mark.parametrize("bundle", SHIPPED, ids=lambda p: p.name)
def test_a_shipped_bundle_verifies_and_holds_only_its_files(bundle: Path) -> None:
    manifest = Bundle.load(bundle).data  # every listed file's sha256 checked
    on_disk = {p.name for p in bundle.iterdir()} - LOGS
    assert on_disk == set(manifest["files"]) | {"manifest.json"}
    assert sum(p.stat().st_size for p in bundle.iterdir() if p.name not in LOGS) <= MAX_BYTES


@pytest.mark.parametrize("bundle", SHIPPED, ids=lambda p: p.name)
def test_a_shipped_bundle_ladder_obeys_its_recorded_tests(bundle: Path) -> None:
    """Each path on the battery and schedule ladders was found more accurate than every
    cheaper path on them by the paired test the manifest records."""
    manifest = Bundle.load(bundle).data
    passed = passed_pairs(manifest)
    assert passed is not None, f"{bundle.name} records no ladder tests; export it again"
    order = manifest["policies"]["schedule"]["order"]
    assert [lv["path"] for lv in manifest["policies"]["battery"]["levels"]] == order
    for i, upper in enumerate(order):
        for lower in order[i + 1 :]:
            assert (upper, lower) in passed


USES = re.compile(
    r"(?:prp-run|prp-simulate|prp-calibrate|AdaptiveModel|BundleCheck)[ (]+[\"']?exported/([\w.-]+)"
)


def test_the_docs_run_bundles_that_ship() -> None:
    """Every bundle the README and docs run in an example (prp-run, prp-simulate,
    prp-calibrate, AdaptiveModel, the bridge's BundleCheck) is a shipped bundle."""
    names = {p.name for p in SHIPPED}
    docs = [ROOT / "README.md", ROOT / "android_bridge" / "README.md"]
    for doc in [*docs, *sorted((ROOT / "docs").glob("*.md"))]:
        if doc.name == "research-log.md":  # history names bundles that no longer ship
            continue
        for name in USES.findall(doc.read_text()):
            assert name in names, f"{doc.name} runs exported/{name}, which does not ship"
