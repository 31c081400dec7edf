"""The lazy chain `build` hands the engine, walked offline for each variant, profile and branch.

No Dagger engine runs here: these tests read the SDK's query objects, which are
exactly what the engine would be asked to resolve.
"""

from __future__ import annotations

import json

import pytest
from steadydancer import catalog

from ci import caches, image, paths, pins
from ci.layers.attention import FLASH_BUILD_ENV
from ci.layers.models import MANIFEST
from ci.layers.openmmlab import MMCV_BUILD_ENV
from ci.options import BuildOptions
from tests.conftest import PLANS
from tests.dagger_offline import describe, describe_field, execs, fields, nested, ops


def build(variant: str = "fp8", profile: str = "cu124", plan: str = "wheel", bake: bool = True):
    options = BuildOptions.parse(variant, profile, "auto", bake_models=bake)
    return image.image(options, PLANS[plan])


def exec_with(ctr, *words: str) -> list[str]:
    matches = [args for args in execs(ctr) if all(word in args for word in words)]
    assert matches, f"no exec with {words}"
    return matches[0]


@pytest.mark.parametrize("profile", sorted(pins.PROFILES))
def test_base_image_and_python_come_from_the_profile(profile: str) -> None:
    ctr = build(profile=profile)
    assert ops(ctr)[1] == ("from", {"address": pins.PROFILES[profile].runtime_image})
    assert ["uv", "python", "install", pins.PYTHON_VERSION] in execs(ctr)
    assert ["uv", "venv", "--seed", "--python", pins.PYTHON_VERSION, paths.VENV] in execs(ctr)
    uv_sources = [
        obj for _, name, obj in nested(ctr) if name == "source" and "uv:" in describe(obj)
    ]
    assert pins.UV_IMAGE in describe(uv_sources[0])


def test_torch_trio_is_exact_and_hashed_for_cu124() -> None:
    install = exec_with(build(profile="cu124"), "torch==2.5.1")
    assert install[-4:] == [
        "torch==2.5.1",
        "torchvision==0.20.1",
        "torchaudio==2.5.1",
        "numpy==1.26.4",
    ]
    assert "--require-hashes" in install
    assert install[install.index("--constraint") + 1] == "/tmp/steadydancer-install/lock.txt"


def test_torch_trio_comes_from_the_pytorch_index_for_cu121() -> None:
    install = exec_with(build(profile="cu121"), "torch==2.5.1+cu121")
    position = install.index("--extra-index-url")
    assert install[position : position + 4] == [
        "--extra-index-url",
        "https://download.pytorch.org/whl/cu121",
        "--index-strategy",
        "unsafe-best-match",
    ]
    assert "torchvision==0.20.1+cu121" in install and "torchaudio==2.5.1+cu121" in install
    assert "--require-hashes" not in install  # cu121 has no lock yet: resolved at build time


def test_setuptools_below_82_before_anything_is_compiled() -> None:
    ctr = build()
    tools = exec_with(ctr, "setuptools==80.9.0")
    assert tools.index("setuptools==80.9.0") > 0
    assert int(pins.SETUPTOOLS.version.split(".")[0]) < 82


def wheel_build(ctr, requirement: str):
    """The builder chain whose /dist output (a compiled wheel) is mounted into the image."""
    for _, _, obj in nested(ctr):
        if ops(obj)[-1] == ("directory", {"path": "/dist"}) and any(
            args[-1] == requirement for args in execs(obj)
        ):
            return obj
    raise AssertionError(f"no wheel build of {requirement} is mounted into the image")


def test_mmcv_is_compiled_with_cuda_ops_in_a_builder_and_only_its_wheel_is_carried() -> None:
    ctr = build()
    builder = wheel_build(ctr, "mmcv==2.1.0")
    env = {args["name"]: args["value"] for name, args in ops(builder) if name == "withEnvVariable"}
    for key, value in MMCV_BUILD_ENV.items():
        assert env[key] == value
    assert env["FORCE_CUDA"] == "1" and env["TORCH_CUDA_ARCH_LIST"] == "8.0;8.6;8.9;9.0+PTX"
    (compile_cmd,) = [args for args in execs(builder) if "mmcv==2.1.0" in args]
    assert "--no-build-isolation" in compile_cmd and compile_cmd[-1] == "mmcv==2.1.0"
    assert ("withMountedCache", "/wheel-cache") in [
        (name, args.get("path")) for name, args in ops(builder)
    ]
    assert ops(builder)[-1] == ("directory", {"path": "/dist"})
    # The image gets the wheel through a mount and installs it alone, never from the sdist.
    assert exec_with(ctr, "mmcv==2.1.0", "--no-index") == [
        "uv",
        "pip",
        "install",
        "--no-deps",
        "--no-index",
        "--find-links",
        "/tmp/steadydancer-wheels",
        "mmcv==2.1.0",
    ]
    openmmlab = exec_with(ctr, "mmengine==0.10.7")
    assert openmmlab[openmmlab.index("--no-build-isolation-package") + 1] == "chumpy"


def test_openmmlab_ends_with_the_import_chain_check() -> None:
    check = exec_with(build(), "mmcv.ops")
    assert check[:2] == ["python", "/opt/steadydancer-tools/import_check.py"]
    assert {"mmcv", "mmcv.ops", "mmdet", "mmpose"} <= set(check[2:])


def is_local_wheel(args: list[str]) -> bool:
    return "--no-index" in args and "--no-deps" in args


@pytest.mark.parametrize("profile", sorted(pins.PROFILES))
def test_every_install_is_held_to_the_lock_or_the_constraints(profile: str) -> None:
    installs = [
        args for args in execs(build(profile=profile)) if args[:3] == ["uv", "pip", "install"]
    ]
    assert len(installs) >= 8
    locked = profile == "cu124"
    for args in installs:
        if is_local_wheel(args):
            continue
        assert "--override" in args and "--constraint" in args, args
        assert ("--require-hashes" in args) == locked, args


def test_constraint_and_override_files_hold_the_pins() -> None:
    profile = pins.PROFILES["cu124"]
    assert {"torch==2.5.1", "numpy==1.26.4", "xformers==0.0.29.post1"} <= set(
        pins.constraints(profile)
    )
    assert 'onnxruntime ; sys_platform == "never"' in pins.overrides()
    assert 'opencv-python-headless ; sys_platform == "never"' in pins.overrides()


def test_flash_attn_wheel_branch_installs_the_release_wheel_and_records_it() -> None:
    ctr = build(plan="wheel")
    http = [obj for _, name, obj in nested(ctr) if name == "source" and "http(" in describe(obj)]
    assert PLANS["wheel"].wheel_url in describe(http[0])
    assert "xformers==0.0.29.post1" not in " ".join(" ".join(args) for args in execs(ctr))
    assert ("withEnvVariable", {"name": "STEADYDANCER_ATTENTION", "value": "flash_attn_2"}) in ops(
        ctr
    )
    assert ("withLabel", {"name": "org.steadydancer.attention", "value": "flash_attn_2"}) in ops(
        ctr
    )
    assert exec_with(ctr, "flash_attn")[-1] == "flash_attn"


def test_flash_attn_source_branch_builds_a_bounded_wheel() -> None:
    ctr = build(plan="source")
    builder = wheel_build(ctr, "flash-attn==2.7.4.post1")
    env = {args["name"]: args["value"] for name, args in ops(builder) if name == "withEnvVariable"}
    assert {key: env[key] for key in FLASH_BUILD_ENV} == FLASH_BUILD_ENV
    (compile_cmd,) = [args for args in execs(builder) if "flash-attn==2.7.4.post1" in args]
    assert compile_cmd[compile_cmd.index("--timeout") + 1] == str(pins.FLASH_ATTN_BUILD_TIMEOUT_S)
    assert "--no-build-isolation" in compile_cmd


def test_xformers_branch_pins_xformers_and_records_it() -> None:
    ctr = build(plan="xformers")
    install = exec_with(ctr, "xformers==0.0.29.post1")
    assert "--constraint" in install
    assert ("withEnvVariable", {"name": "STEADYDANCER_ATTENTION", "value": "xformers"}) in ops(ctr)
    assert not any(
        "flash" in describe(obj) for _, _, obj in nested(ctr) if "http(" in describe(obj)
    )


def test_comfyui_and_node_packs_come_from_git_at_full_commits() -> None:
    text = describe(build())
    for pin in (pins.COMFYUI, *pins.NODE_PACKS):
        assert len(pin.commit) == 40 and int(pin.commit, 16) >= 0
        assert f"git(url={pin.url!r})" in text
        assert f"commit(id={pin.commit!r})" in text
    targets = [args["path"] for name, args in ops(build()) if name == "withDirectory"]
    assert paths.COMFYUI_DIR in targets
    for pack in pins.NODE_PACKS:
        assert f"{paths.CUSTOM_NODES_DIR}/{pack.name}" in targets


def test_cache_volumes_are_mounted_where_the_tools_look() -> None:
    text = describe(build())
    for key in ("uv", "wheels", "huggingface", "apt-archives-cu124", "apt-lists-cu124"):
        assert f"cacheVolume(key='{caches.PREFIX}-{key}')" in text


def model_layers(ctr) -> list[dict[str, object]]:
    """The manifest entry each model operation of a build fetches, in layer order."""
    layers = []
    for field in fields(ctr):
        if field.name == "withDirectory" and field.args["path"] == paths.MODELS_DIR:
            tree = field.args["source"]
            (manifest_file,) = [
                args
                for name, args in ops(tree)
                if name == "withNewFile" and args["path"] == MANIFEST
            ]
            (entry,) = json.loads(manifest_file["contents"])  # one file, one layer
            assert ops(tree)[-1] == ("withTimestamps", {"timestamp": 0})
            layers.append(entry)
    return layers


@pytest.mark.parametrize("variant", sorted(catalog.VARIANTS))
def test_each_model_file_of_the_variant_is_a_layer_of_its_own(variant: str) -> None:
    layers = model_layers(build(variant=variant))
    assert sorted(entry["target"] for entry in layers) == sorted(
        entry.target for entry in catalog.placeable(variant)
    )
    assert {str(entry["target"]).split("/")[0] for entry in layers} == {
        "diffusion_models",
        "vae",
        "text_encoders",
        "clip_vision",
        "loras",
        "detection",
        "dwpose",
    }
    shared = {e.key for e in catalog.placeable(variant)}
    for other in catalog.VARIANTS:
        shared &= {e.key for e in catalog.placeable(other)}
    targets = {e.target: e.key for e in catalog.placeable(variant)}
    keys = [targets[str(entry["target"])] for entry in layers]
    # The files every variant shares come first, then the variant's own (DiT, text encoder).
    assert set(keys[: len(shared)]) == shared
    assert any("steadydancer" in key for key in keys[len(shared) :])


def test_the_same_model_file_is_the_same_operation_in_every_variant() -> None:
    fp8, fp16 = build("fp8"), build("fp16")

    def model_ops(ctr) -> dict[str, str]:
        return {
            str(json.loads(args["contents"])[0]["target"]): describe_field(field)
            for field in fields(ctr)
            if field.name == "withDirectory" and field.args["path"] == paths.MODELS_DIR
            for name, args in ops(field.args["source"])
            if name == "withNewFile" and args["path"] == MANIFEST
        }

    fp8_ops, fp16_ops = model_ops(fp8), model_ops(fp16)
    vae = "vae/wanvideo/Wan2_1_VAE_bf16.safetensors"
    assert vae in fp8_ops and fp8_ops[vae] == fp16_ops[vae]
    shared = set(fp8_ops) & set(fp16_ops)
    # Eight files shared, less yolox-l: never baked until the catalog records its sha256.
    assert catalog.refused("fp8") == catalog.refused("fp16") == (catalog.FILES["yolox-l"],)
    assert len(shared) == 7
    assert all(fp8_ops[target] == fp16_ops[target] for target in shared)


def test_vitpose_onnx_and_its_data_file_sit_side_by_side() -> None:
    targets = {entry.target for entry in catalog.placeable("fp8")}
    assert "detection/onnx/vitpose_h_wholebody_model.onnx" in targets
    assert "detection/onnx/vitpose_h_wholebody_data.bin" in targets


def test_unbaked_build_has_no_models() -> None:
    ctr = build(bake=False)
    assert paths.MODELS_DIR not in [
        args.get("path") for name, args in ops(ctr) if name == "withDirectory"
    ]
    assert ("withEnvVariable", {"name": "STEADYDANCER_MODELS_BAKED", "value": "false"}) in ops(ctr)


def test_runtime_exposes_comfyui_and_starts_the_entrypoint() -> None:
    ctr = build()
    assert ("withExposedPort", {"port": 8188, "description": "ComfyUI web UI and API"}) in ops(ctr)
    assert (
        "withEntrypoint",
        {"args": ["tini", "--", "python", "-m", "steadydancer.entrypoint"]},
    ) in ops(ctr)
    assert ("withEnvVariable", {"name": "PYTHONPATH", "value": paths.APP_DIR}) in ops(ctr)
    assert ("withoutMount", {"path": paths.UV_CACHE}) in ops(ctr)


def test_the_hugging_face_token_travels_as_a_secret_only() -> None:
    """The token is a Secret mounted as a variable of the fetch exec, never a plain value."""
    from dagger import dag

    token = dag.set_secret("hf", "hf_example_not_a_real_token")
    options = BuildOptions.parse("fp8", "cu124", "auto")
    ctr = image.image(options, PLANS["wheel"], token)
    trees = [
        field.args["source"]
        for field in fields(ctr)
        if field.name == "withDirectory" and field.args["path"] == paths.MODELS_DIR
    ]
    assert len(trees) == len(catalog.placeable("fp8"))
    for tree in trees:
        assert ("withSecretVariable", "HF_TOKEN") in [
            (name, args.get("name")) for name, args in ops(tree)
        ]
    for name, args in ops(ctr) + [op for tree in trees for op in ops(tree)]:
        if name in {"withEnvVariable", "withLabel", "withNewFile"}:
            assert "hf_example" not in json.dumps(args)


def mounted_files(ctr, position: int) -> dict[str, str]:
    """The files of the directory mounted just before the exec at `position`."""
    mount = fields(ctr)[position - 1]
    assert mount.name == "withMountedDirectory", mount.name
    return {
        args["path"]: args["contents"]
        for name, args in ops(mount.args["source"])
        if name == "withNewFile"
    }


def exec_position(ctr, *words: str) -> int:
    for position, (name, args) in enumerate(ops(ctr)):
        if name == "withExec" and all(word in args["args"] for word in words):
            return position
    raise AssertionError(f"no exec with {words}")


def test_each_install_mounts_only_the_lock_entries_it_draws_on() -> None:
    ctr = build()
    torch_lock = mounted_files(ctr, exec_position(ctr, "torch==2.5.1", "--require-hashes"))[
        "lock.txt"
    ]
    assert "torch==2.5.1 \\\n    --hash=sha256:" in torch_lock
    assert "nvidia-cudnn-cu12==9.1.0.70" in torch_lock
    assert "aiohttp==" not in torch_lock and "mmengine==" not in torch_lock
    comfy = exec_with(ctr, "comfy-kitchen==0.2.27")
    comfy_lock = mounted_files(ctr, exec_position(ctr, "comfy-kitchen==0.2.27"))["lock.txt"]
    assert "aiohttp==" in comfy_lock
    assert "transformers==4.57.6" in comfy
    assert not any(
        arg.startswith("opencv-python-headless") for arg in exec_with(ctr, "mss==10.2.0")
    )


def test_every_installing_layer_ends_with_the_drift_guard() -> None:
    ctr = build(plan="xformers")
    checks = [args for args in execs(ctr) if "/opt/steadydancer-tools/drift_check.py" in args]
    assert len(checks) == 5  # torch, openmmlab, attention, comfyui, nodes
    for args in checks:
        assert {"torch==2.5.1", "torchvision==0.20.1", "numpy==1.26.4"} <= set(args)
        assert args[args.index("--absent") + 1] == "onnxruntime"
    assert "xformers==0.0.29.post1" in checks[2] and "mmcv==2.1.0" in checks[2]
    assert {"diffusers==0.38.0", "onnxruntime-gpu==1.20.2"} <= set(checks[-1])


def test_the_image_has_no_cuda_toolkit_and_the_builders_do() -> None:
    """The image's own chain starts from the CUDA base image; only the compiles use devel."""
    profile = pins.PROFILES["cu124"]
    for plan in ("wheel", "source"):
        ctr = build(plan=plan)
        own = [args["address"] for name, args in ops(ctr) if name == "from"]
        assert own == [profile.runtime_image]
        compiles = [
            obj
            for _, name, obj in nested(ctr)
            if name == "source" and "wheel_cache" in describe(obj)
        ]
        assert compiles and all(
            describe(obj).startswith(f"<container().from(address='{profile.devel_image}')")
            for obj in compiles
        )
    # What was compiled is checked where it runs: in the image, not in the builder.
    check = exec_with(build(), "mmcv.ops")
    assert check[:2] == ["python", "/opt/steadydancer-tools/import_check.py"]


def test_torchs_cuda_libraries_are_on_the_library_path_of_the_image() -> None:
    (value,) = [
        args["value"]
        for name, args in ops(build())
        if name == "withEnvVariable" and args["name"] == "LD_LIBRARY_PATH"
    ]
    site = "/opt/venv/lib/python3.11/site-packages/nvidia"
    for library in ("cudnn", "cublas", "cufft", "curand", "cuda_runtime"):
        assert f"{site}/{library}/lib" in value
    assert value.endswith(":${LD_LIBRARY_PATH}")  # the driver's folders stay
