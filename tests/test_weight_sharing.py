"""Weight sharing in memory, on the shipped bundle run by real ONNX Runtime (issue 18, item 8)."""

from __future__ import annotations

import shutil

import numpy as np
from bundle_variants import SMOKE
from prp.runtime import Bundle
from prp.runtime.backends import OnnxRuntimeBackend
from prp.runtime.bundle import WEIGHTS


def _shared_conv_weight(bundle: Bundle) -> tuple[dict, list[str]]:
    """A conv weight (out and in channels > 1, so no per-path BN vector) that two or more
    paths use, and the ids of those paths."""
    users: dict[int, list[str]] = {}
    tensors: dict[int, dict] = {}
    for p in bundle.paths:
        for t in p["onnx_initializers"]:
            if len(t["shape"]) == 4 and t["shape"][0] > 1 and t["shape"][1] > 1:
                users.setdefault(t["offset"], []).append(p["id"])
                tensors[t["offset"]] = t
    offset = max(users, key=lambda o: (len(users[o]), tensors[o]["length"]))
    assert len(users[offset]) >= 2, "the shipped bundle should share a conv weight"
    return tensors[offset], users[offset]


def test_shared_onnx_sessions_read_the_one_memory_map_of_weights_bin(tmp_path) -> None:
    # Proof that sharing is real: after loading, overwrite a conv weight that several paths use
    # in weights.bin itself. Sessions that read the one memory map see the change at once;
    # sessions holding a copy of their own (ONNX Runtime's optimised default, and the earlier
    # add_initializer code, whose overrides ONNX Runtime ignored for every conv) do not.
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(SMOKE, bundle_dir)
    bundle = Bundle.load(bundle_dir)
    shared = OnnxRuntimeBackend(bundle, share_weights=True)
    own = OnnxRuntimeBackend(bundle)
    shape = (2, *bundle.data["input"]["shape"][1:])  # two images of the bundle's input
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    before = {pid: own.run(pid, x) for pid in bundle.ids}
    for pid in bundle.ids:  # the unoptimised shared graphs compute the same logits
        np.testing.assert_allclose(shared.run(pid, x), before[pid], atol=1e-4)

    tensor, users = _shared_conv_weight(bundle)
    with (bundle_dir / WEIGHTS).open("r+b") as f:
        f.seek(tensor["offset"])
        f.write(bytes(tensor["length"]))  # zeros in place: same file, same pages

    for pid in users:
        assert np.abs(shared.run(pid, x) - before[pid]).max() > 1e-3, pid
        np.testing.assert_allclose(own.run(pid, x), before[pid], atol=1e-6)
