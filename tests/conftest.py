import os

# The SDK reads the main object's name when dagger.mod is first imported.
os.environ.setdefault("DAGGER_MAIN_OBJECT", "SteadyDancer")

import pytest

from ci import pins
from ci.layers.attention import AttentionPlan
from ci.options import BuildOptions

WHEEL_PLAN = AttentionPlan(
    "flash_attn_2",
    "wheel",
    "the release wheel for this tuple exists",
    "https://github.com/Dao-AILab/flash-attention/releases/download/v2.7.4.post1/"
    "flash_attn-2.7.4.post1+cu12torch2.5cxx11abiFALSE-cp311-cp311-linux_x86_64.whl",
)
SOURCE_PLAN = AttentionPlan("flash_attn_2", "source", "no release wheel; built from source")
XFORMERS_PLAN = AttentionPlan("xformers", "pypi", "--attention xformers asked for xformers")
PLANS = {"wheel": WHEEL_PLAN, "source": SOURCE_PLAN, "xformers": XFORMERS_PLAN}


@pytest.fixture
def options() -> BuildOptions:
    return BuildOptions.parse("fp8", pins.DEFAULT_PROFILE, "auto")
