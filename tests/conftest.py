"""Shared fixtures: a small generated MVTec tree, and the real sample when it is there."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers.core.env import load_torch_before_tensorflow

load_torch_before_tensorflow()  # test modules import TensorFlow at collection (see the docstring)

#: Seconds nbval waits for each output message of a finished notebook cell (its hard-coded default: 5). A notebook
#: that draws a large figure on a busy 2-core machine can take longer to send it, and the cell then failed with
#: "Timeout of 5 seconds exceeded waiting for output" although it ran; the cell's own limit is unchanged.
NBVAL_OUTPUT_TIMEOUT = 60


def pytest_collection_modifyitems(items):
    """Notebook runs (nbval items) are slow: ``-m "not slow"`` leaves them out with the learning tests. They wait
    :data:`NBVAL_OUTPUT_TIMEOUT` s for a finished cell's output."""
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = NBVAL_OUTPUT_TIMEOUT
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "mvtec_sample"


@pytest.fixture(scope="session")
def small_spec():
    from helpers.data.synthetic import SyntheticSpec

    return SyntheticSpec(size=64, n_train_good=6, n_test_good=3, n_per_defect=2,
                         categories=("bottle", "grid", "screw", "carpet"))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory, small_spec) -> Path:
    """A small built-in dataset (4 categories, 64 px), generated once per session. Do not modify."""
    from helpers.data.synthetic import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synth") / "mvtec", small_spec, progress=False)


@pytest.fixture()
def synthetic_copy(synthetic_root, tmp_path) -> Path:
    """A private copy of the small dataset that a test may damage."""
    dest = tmp_path / "mvtec"
    shutil.copytree(synthetic_root, dest)
    return dest


@pytest.fixture(scope="session")
def real_sample() -> Path:
    if not REAL_SAMPLE.is_dir():
        pytest.skip(f"real MVTec sample not present at {REAL_SAMPLE}")
    return REAL_SAMPLE


def prepare_learnable(base: Path, categories: tuple[str, ...], size: int = 64):
    """Generated data the learning tests can learn from offline: defects 4× the built-in size, 60 good
    training images, 20 good test images and 15 per defect type per category; prepared at ``size`` px
    (split + cache) in the smoke profile with no cap on images per epoch."""
    from helpers.core import config
    from helpers.data import prepare, synthetic

    spec = synthetic.SyntheticSpec(size=size, n_train_good=60, n_test_good=20, n_per_defect=15, defect_scale=4.0,
                                   difficulty="uniform",
                                   categories=categories)
    root = synthetic.generate_dataset(base / "mvtec", spec, progress=False)
    cfg = config.with_profile(config.get_config("smoke", data_dir=root, runs_dir=base / "runs"),
                              image_size=size, tf_image_size=size, max_train_images=None)
    return prepare.prepare(cfg, progress=False)

