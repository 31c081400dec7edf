"""The size model plan prints: recorded wheel sizes per layer, catalog sizes per model layer."""

from __future__ import annotations

from packaging.utils import canonicalize_name
from steadydancer import catalog

from ci import lock as locks
from ci import pins, sizes

PROFILE = pins.PROFILES["cu124"]


def test_the_installed_wheel_is_the_best_tagged_one_the_lock_hashes() -> None:
    files = [
        {"filename": "pkg-1.0.tar.gz", "hashes": {"sha256": "a"}, "size": 1},
        {"filename": "pkg-1.0-py3-none-any.whl", "hashes": {"sha256": "b"}, "size": 2},
        {"filename": "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "hashes": {"sha256": "c"}},
        {"filename": "pkg-1.0-cp311-cp311-macosx_11_0_arm64.whl", "hashes": {"sha256": "d"}},
        {"filename": "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "hashes": {"sha256": "e"}},
    ]
    chosen = sizes.chosen_wheel(files, {"a", "b", "c", "d", "e"})
    assert chosen is not None and chosen["filename"].startswith("pkg-1.0-cp311-cp311-manylinux")
    assert sizes.chosen_wheel(files, {"b", "d"}) == files[1]
    assert sizes.chosen_wheel(files, {"a", "d", "e"}) is None


def test_the_recorded_sizes_cover_the_lock() -> None:
    """ci/locks/cu124.sizes.json is written with the lock; only sdist-only packages lack one."""
    lock = locks.load("cu124")
    assert lock is not None
    recorded = sizes.load("cu124")
    assert set(recorded) <= set(lock.versions)
    assert set(lock.versions) - set(recorded) == {canonicalize_name(pins.CHUMPY.name)}
    assert recorded["torch"] > 500_000_000


def test_python_layers_count_each_package_once() -> None:
    lock = locks.load("cu124")
    assert lock is not None
    layers = sizes.python_layers(PROFILE, "xformers")
    assert [layer.name for layer in layers] == [
        "base",
        "torch",
        "openmmlab",
        "attention",
        "comfyui",
        "nodes",
    ]
    recorded = sizes.load("cu124")
    assert sum(layer.size for layer in layers) <= sum(recorded.values())
    torch = next(layer for layer in layers if layer.name == "torch")
    assert torch.size >= recorded["torch"] + recorded["nvidia-cudnn-cu12"]
    attention = next(layer for layer in layers if layer.name == "attention")
    assert attention.size >= recorded["xformers"]


def test_plan_totals_models_and_packages_against_the_goal() -> None:
    lines = sizes.summary(PROFILE, "fp8", "flash_attn_2", baked=True)
    assert any("16.41 GB  model Wan21_SteadyDancer_fp8_e4m3fn_scaled_KJ" in line for line in lines)
    unsized = [e.filename for e in catalog.CATALOG_VARIANTS["fp8"].unsized]
    if unsized:
        # plan cannot call a total with a file of unknown size in it "within" anything.
        assert "within the 50 GB goal is unknown" in lines[-1] and unsized[0] in lines[-1]
    else:
        assert "in all, within the 50 GB goal" in lines[-1]
    assert "in all, within the 50 GB goal" in sizes.summary(PROFILE, "fp8", "xformers", False)[-1]
    total = float(lines[-1].split("GB")[0])
    models = catalog.CATALOG_VARIANTS["fp8"].recorded_size / 1e9
    assert models < total < models + 10
    unbaked = sizes.summary(PROFILE, "fp8", "flash_attn_2", baked=False)
    assert not any("model " in line for line in unbaked)
    fp16 = sizes.summary(PROFILE, "fp16", "flash_attn_2", baked=True)
    assert any(
        "Wan21_I2V_SteadyDancer_fp16.safetensors (not counted: size)" in line for line in fp16
    )
