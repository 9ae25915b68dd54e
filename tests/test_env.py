"""The runtime: what the setup cell says about the accelerator, and the provenance every metrics.json carries."""
from __future__ import annotations

import pytest

from helpers.core import env


def test_colab_without_a_gpu_says_how_to_get_one():
    line = env.runtime_notice("quick", colab=True, cuda=False)
    assert "NO GPU" in line and "Runtime → Change runtime type → T4 GPU" in line and "'quick'" in line
    assert line.count("\n") >= 3                                      # a banner, not one more line of output
    plain = env.runtime_notice("quick", colab=False, cuda=False)
    assert "No CUDA GPU" in plain and "Change runtime type" not in plain


def test_code_and_device_are_recorded():
    import helpers

    code = env.code_version()
    assert code["package"] == helpers.__version__
    assert code["commit"] is None or len(code["commit"].split("+")[0]) == 40   # a git checkout: the full hash
    device = env.device_info()
    assert device["cpu_cores"] >= 1 and set(device) >= {"cpu", "gpu", "colab"}


@pytest.mark.parametrize("profile", ["full", "quick", "smoke"])
def test_notice_names_the_profile(profile):
    assert profile in env.runtime_notice(profile, colab=False, cuda=False)
