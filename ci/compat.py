"""Compatibility rules for the versions a profile puts together, each with its reason and source.

A rule reads a Stack (the versions as the image would install them) and returns
findings: what conflicts, with which version, and the fix. No network, no build.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ci import pins


@dataclass(frozen=True)
class Stack:
    """The versions a profile installs together, as the rules see them."""

    python_tag: str
    cuda_version: str
    torch: str
    torchvision: str
    torchaudio: str
    cxx11_abi: bool
    xformers: str | None
    flash_attn: str | None
    mmcv: str
    mmdet: str
    mmpose: str
    mmengine: str
    numpy: str
    opencv: str
    setuptools: str
    comfyui_commit: str
    comfyui_date: str
    comfy_kitchen: str | None
    transformers: str | None
    diffusers: str | None
    onnxruntime_gpu: str | None
    distributions: frozenset[str]
    """Every distribution the image installs (the lock's names, else the pinned ones)."""

    @classmethod
    def from_pins(cls, profile: pins.Profile, distributions: frozenset[str]) -> Stack:
        return cls(
            python_tag=pins.PYTHON_TAG,
            cuda_version=profile.cuda_version,
            torch=pins.TORCH.version,
            torchvision=pins.TORCHVISION.version,
            torchaudio=pins.TORCHAUDIO.version,
            cxx11_abi=pins.TORCH_CXX11_ABI,
            xformers=pins.XFORMERS.version,
            flash_attn=pins.FLASH_ATTN.version,
            mmcv=pins.MMCV.version,
            mmdet=pins.MMDET.version,
            mmpose=pins.MMPOSE.version,
            mmengine=pins.MMENGINE.version,
            numpy=pins.NUMPY.version,
            opencv=pins.OPENCV.version,
            setuptools=pins.SETUPTOOLS.version,
            comfyui_commit=pins.COMFYUI.commit,
            comfyui_date=pins.COMFYUI.date,
            comfy_kitchen=pins.COMFY_KITCHEN.version,
            transformers=pins.TRANSFORMERS.version,
            diffusers=pins.DIFFUSERS.version,
            onnxruntime_gpu=pins.ONNXRUNTIME_GPU.version,
            distributions=distributions,
        )

    @property
    def torch_minor(self) -> str:
        return ".".join(self.torch.split("+")[0].split(".")[:2])

    @property
    def cuda_major(self) -> int:
        return int(self.cuda_version.split(".")[0])


def v(text: str) -> Version:
    return Version(text.split("+")[0])


@dataclass(frozen=True)
class Rule:
    name: str
    reason: str
    source: str
    check: Callable[[Stack], list[str]]


RULES: list[Rule] = []


def rule(
    name: str, reason: str, source: str
) -> Callable[[Callable[[Stack], list[str]]], Callable[[Stack], list[str]]]:
    def register(check: Callable[[Stack], list[str]]) -> Callable[[Stack], list[str]]:
        RULES.append(Rule(name, reason, source, check))
        return check

    return register


TORCH_COMPANIONS = {
    "2.4.1": ("0.19.1", "2.4.1"),
    "2.5.0": ("0.20.0", "2.5.0"),
    "2.5.1": ("0.20.1", "2.5.1"),
    "2.6.0": ("0.21.0", "2.6.0"),
    "2.7.1": ("0.22.1", "2.7.1"),
}


@rule(
    "torch-trio",
    "torchvision and torchaudio each require one exact torch",
    "Requires-Dist of torchvision and torchaudio on PyPI (torchvision 0.20.1: torch==2.5.1)",
)
def torch_trio(stack: Stack) -> list[str]:
    torch = stack.torch.split("+")[0]
    if torch not in TORCH_COMPANIONS:
        return [
            f"torch {stack.torch} has no known torchvision/torchaudio pair; known: "
            f"{', '.join(TORCH_COMPANIONS)}"
        ]
    vision, audio = TORCH_COMPANIONS[torch]
    found = []
    if stack.torchvision.split("+")[0] != vision:
        found.append(
            f"torchvision {stack.torchvision} does not go with torch {stack.torch}: "
            f"use torchvision {vision}"
        )
    if stack.torchaudio.split("+")[0] != audio:
        found.append(
            f"torchaudio {stack.torchaudio} does not go with torch {stack.torch}: "
            f"use torchaudio {audio}"
        )
    return found


XFORMERS_TORCH = {
    "0.0.28.post1": "2.4.1",
    "0.0.28.post2": "2.5.0",
    "0.0.28.post3": "2.5.1",
    "0.0.29": "2.5.1",
    "0.0.29.post1": "2.5.1",
    "0.0.29.post2": "2.6.0",
    "0.0.30": "2.7.0",
    "0.0.31.post1": "2.7.1",
}


@rule(
    "xformers-torch",
    "each xformers wheel requires one exact torch; an unpinned xformers upgrades torch",
    "xformers Requires-Dist on PyPI and its CHANGELOG; `pip install xformers` resolves to "
    "xformers 0.0.35 with torch 2.15 and CUDA 13 libraries",
)
def xformers_torch(stack: Stack) -> list[str]:
    torch = stack.torch.split("+")[0]
    matching = [x for x, t in XFORMERS_TORCH.items() if t == torch]
    if stack.xformers is None:
        return [
            f"xformers is not pinned: pip would pick the newest xformers and replace torch "
            f"{stack.torch}; pin xformers to {matching[-1] if matching else 'a matching release'}"
        ]
    wanted = XFORMERS_TORCH.get(stack.xformers)
    if wanted != torch:
        needs = f"torch=={wanted}" if wanted else "an unknown torch"
        return [
            f"xformers {stack.xformers} requires {needs}, but torch is {stack.torch}: "
            f"use xformers {', '.join(matching) or '(none exists for this torch)'}"
        ]
    return []


FLASH_ATTN_WHEELS = {
    # release: (CUDA majors, torch minors, Python tags); both C++ ABIs are built for each.
    "2.6.3": (
        {11, 12},
        {"2.0", "2.1", "2.2", "2.3", "2.4"},
        {"cp38", "cp39", "cp310", "cp311", "cp312"},
    ),
    "2.7.0.post2": (
        {11, 12},
        {"2.1", "2.2", "2.3", "2.4", "2.5"},
        {"cp38", "cp39", "cp310", "cp311", "cp312"},
    ),
    "2.7.4.post1": (
        {12},
        {"2.2", "2.3", "2.4", "2.5", "2.6"},
        {"cp39", "cp310", "cp311", "cp312", "cp313"},
    ),
    "2.8.3": (
        {12},
        {"2.4", "2.5", "2.6", "2.7", "2.8"},
        {"cp39", "cp310", "cp311", "cp312", "cp313"},
    ),
}


@rule(
    "flash-attn-wheel",
    "a flash-attn release wheel exists only for some (CUDA major, torch minor, Python) tuples; "
    "any other falls back to a source build of up to hours",
    "Dao-AILab/flash-attention .github/workflows/publish.yml at each release tag",
)
def flash_attn_wheel(stack: Stack) -> list[str]:
    if stack.flash_attn is None:
        return []
    built = FLASH_ATTN_WHEELS.get(stack.flash_attn)
    if built is None:
        return [
            f"flash-attn {stack.flash_attn} is not a release this check knows: "
            f"use one of {', '.join(FLASH_ATTN_WHEELS)}"
        ]
    cudas, torches, pythons = built
    missing = []
    if stack.cuda_major not in cudas:
        missing.append(f"CUDA {stack.cuda_major}")
    if stack.torch_minor not in torches:
        missing.append(f"torch {stack.torch_minor}")
    if stack.python_tag not in pythons:
        missing.append(stack.python_tag)
    if not missing:
        return []
    fits = [
        r
        for r, (c, t, p) in FLASH_ATTN_WHEELS.items()
        if stack.cuda_major in c and stack.torch_minor in t and stack.python_tag in p
    ]
    return [
        f"flash-attn {stack.flash_attn} has no release wheel for {', '.join(missing)} "
        f"(cu{stack.cuda_major}, torch {stack.torch_minor}, {stack.python_tag}): "
        f"use {' or '.join(fits) if fits else 'the xformers branch'}"
    ]


MMDET_ACCEPTS = {
    "3.1.0": (">=2.0.0rc4,<2.1.0", ">=0.7.1,<1.0.0"),
    "3.2.0": (">=2.0.0rc4,<2.2.0", ">=0.7.1,<1.0.0"),
    "3.3.0": (">=2.0.0rc4,<2.2.0", ">=0.7.1,<1.0.0"),
}
MMPOSE_ACCEPTS = {"1.3.2": (">=2.0.0rc4,<=3.0.0", ">=0.6.0,<=1.0.0")}


@rule(
    "openmmlab-ranges",
    "mmdet and mmpose assert the mmcv and mmengine versions they accept at import time",
    "mmdet/__init__.py (mmcv_minimum/maximum_version) and mmpose/__init__.py at each release",
)
def openmmlab_ranges(stack: Stack) -> list[str]:
    found = []
    for package, version, table in (
        ("mmdet", stack.mmdet, MMDET_ACCEPTS),
        ("mmpose", stack.mmpose, MMPOSE_ACCEPTS),
    ):
        if version not in table:
            found.append(
                f"{package} {version} is not a release this check knows: "
                f"use one of {', '.join(table)}"
            )
            continue
        mmcv_range, mmengine_range = table[version]
        if not SpecifierSet(mmcv_range).contains(v(stack.mmcv), prereleases=True):
            found.append(
                f"{package} {version} accepts mmcv{mmcv_range}, but mmcv is {stack.mmcv}: "
                "keep mmcv 2.1.0 (mmdet 3.3 rejects 2.2.0)"
            )
        if not SpecifierSet(mmengine_range).contains(v(stack.mmengine), prereleases=True):
            found.append(
                f"{package} {version} accepts mmengine{mmengine_range}, but mmengine is "
                f"{stack.mmengine}"
            )
    return found


COMFYUI_TORCH_27_SINCE = "2026-08-08"


@rule(
    "comfyui-torch",
    "ComfyUI from August 2026 requires torch >= 2.7",
    "Comfy-Org/ComfyUI#15413, merged 2026-08-08",
)
def comfyui_torch(stack: Stack) -> list[str]:
    if stack.comfyui_date >= COMFYUI_TORCH_27_SINCE and v(stack.torch) < Version("2.7"):
        return [
            f"ComfyUI {stack.comfyui_commit[:12]} ({stack.comfyui_date}) requires torch >= 2.7, "
            f"but torch is {stack.torch}: pin a ComfyUI commit from before "
            f"{COMFYUI_TORCH_27_SINCE} (3cd7b32, v0.8.0, is tested on torch 2.5.1)"
        ]
    return []


@rule(
    "comfy-kitchen-torch",
    "comfy-kitchen 0.2.28 and later fail at import on torch < 2.7 (infer_schema of list[int])",
    "ComfyUI#15441 and comfy-kitchen#105; reproduced on torch 2.5.1 with 0.2.28 and 0.2.40",
)
def comfy_kitchen_torch(stack: Stack) -> list[str]:
    if v(stack.torch) >= Version("2.7"):
        return []
    if stack.comfy_kitchen is None:
        return [
            f"comfy-kitchen is not pinned: ComfyUI asks for >=0.2.3, which resolves to a "
            f"release that crashes on torch {stack.torch}; pin comfy-kitchen 0.2.27"
        ]
    if v(stack.comfy_kitchen) >= Version("0.2.28"):
        return [
            f"comfy-kitchen {stack.comfy_kitchen} crashes at import on torch {stack.torch}: "
            "pin comfy-kitchen 0.2.27"
        ]
    return []


@rule(
    "transformers-diffusers-torch",
    "transformers 5 disables PyTorch below 2.6; diffusers 0.39 requires torch >= 2.6",
    "transformers' import check and diffusers' Requires-Dist; WanVideoWrapper failed to "
    "import on torch 2.5.1 with transformers 5.24 and diffusers 0.42",
)
def transformers_diffusers_torch(stack: Stack) -> list[str]:
    if v(stack.torch) >= Version("2.6"):
        return []
    found = []
    if stack.transformers is None or v(stack.transformers) >= Version("5"):
        found.append(
            f"transformers {stack.transformers or '(unpinned)'} disables PyTorch "
            f"{stack.torch}: pin transformers 4.57.6"
        )
    if stack.diffusers is None or v(stack.diffusers) >= Version("0.39"):
        found.append(
            f"diffusers {stack.diffusers or '(unpinned)'} needs torch >= 2.6: pin diffusers 0.38.0"
        )
    return found


NUMPY_1_ONLY = ("xtcocotools", "chumpy")


@rule(
    "numpy-opencv",
    "xtcocotools' wheel and chumpy need numpy 1; OpenCV 4.12 and later require numpy 2",
    "xtcocoapi#45; opencv-python 4.12.0.88 Requires-Dist numpy>=2,<2.3",
)
def numpy_opencv(stack: Stack) -> list[str]:
    found = []
    if v(stack.numpy) >= Version("2"):
        needing = [name for name in NUMPY_1_ONLY if name in stack.distributions]
        found.append(
            f"numpy {stack.numpy} breaks {', '.join(needing) or 'the numpy-1 wheels'} "
            f"(built for numpy 1): pin numpy 1.26.4 and opencv-python 4.11.0.86"
        )
    elif v(stack.opencv) >= Version("4.12"):
        found.append(
            f"opencv-python {stack.opencv} requires numpy >= 2, but numpy is "
            f"{stack.numpy}: pin opencv-python 4.11.0.86"
        )
    return found


@rule(
    "onnxruntime-gpu-only",
    "onnxruntime and onnxruntime-gpu share one package directory: with both, CUDA is gone; "
    "onnxruntime-gpu 1.27 and later are CUDA 13 builds",
    "onnxruntime docs (CUDA 12 builds from 1.19); WanAnimatePreprocess#2 and #28",
)
def onnxruntime_gpu_only(stack: Stack) -> list[str]:
    found = []
    if "onnxruntime" in stack.distributions:
        found.append(
            "onnxruntime (CPU) is installed beside onnxruntime-gpu: drop it "
            "(ci/pins.py EXCLUDED_DISTRIBUTIONS) so CUDAExecutionProvider stays"
        )
    if (
        stack.onnxruntime_gpu
        and v(stack.onnxruntime_gpu) >= Version("1.27")
        and stack.cuda_major == 12
    ):
        found.append(
            f"onnxruntime-gpu {stack.onnxruntime_gpu} is a CUDA 13 build; with CUDA "
            f"{stack.cuda_version} use 1.20.2 (1.19 to 1.26 are CUDA 12)"
        )
    return found


@rule(
    "setuptools-pkg-resources",
    "setuptools 82 removed pkg_resources, imported by mmcv's setup.py, mmengine and openmim",
    "setuptools NEWS v82.0.0; mmcv setup.py at v2.1.0 line 5",
)
def setuptools_pkg_resources(stack: Stack) -> list[str]:
    if v(stack.setuptools) >= Version("82"):
        return [
            f"setuptools {stack.setuptools} has no pkg_resources: mmcv cannot build and "
            "mmengine cannot load; pin setuptools 80.9.0"
        ]
    return []


def check(stack: Stack) -> list[tuple[Rule, list[str]]]:
    return [(each, each.check(stack)) for each in RULES]
