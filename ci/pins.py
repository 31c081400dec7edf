"""Every version the image is built from, each with the reason it was chosen.

This is the one place for pins: the layers, the offline plan and the tests read
them from here. Sources for the reasons are in docs/image.md, "Pins".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pin:
    """A package version and the reason it is pinned."""

    name: str
    version: str
    reason: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class GitPin:
    """A git repository at a full commit."""

    name: str
    url: str
    commit: str
    date: str
    reason: str


UBUNTU = "ubuntu22.04"
BUILDER_REASON = "compiles mmcv's CUDA ops (and flash-attn without a wheel); only wheels leave it"


@dataclass(frozen=True)
class Profile:
    """A CUDA version, its images, and the torch build that matches it."""

    name: str
    cuda_version: str
    torch_local_version: str
    torch_index_url: str | None
    reason: str

    @property
    def devel_image(self) -> str:
        """The builders' image: nvcc and headers, for mmcv and a flash-attn source build."""
        return f"nvidia/cuda:{self.cuda_version}-devel-{UBUNTU}"

    @property
    def runtime_image(self) -> str:
        """The image's own base: the CUDA runtime and the driver hooks, no toolkit.

        torch's wheels bring cuBLAS, cuDNN 9 and the rest as nvidia-* packages, which
        onnxruntime-gpu and mmcv's ops also load; nothing at run time needs nvcc.
        """
        return f"nvidia/cuda:{self.cuda_version}-base-{UBUNTU}"

    @property
    def cuda_major(self) -> int:
        return int(self.cuda_version.split(".")[0])

    def torch_requirements(self) -> list[str]:
        """The exact torch/torchvision/torchaudio trio for this profile."""
        suffix = f"+{self.torch_local_version}" if self.torch_local_version else ""
        return [f"{pin.requirement}{suffix}" for pin in TORCH_TRIO]


PROFILES: dict[str, Profile] = {
    "cu124": Profile(
        name="cu124",
        cuda_version="12.4.1",
        torch_local_version="",
        torch_index_url=None,
        reason=(
            "PyPI's torch 2.5.1 is the cu124 build, so nvcc 12.4 matches it for mmcv and "
            "flash-attn builds; no cudnn flavour, since torch brings its own cuDNN 9"
        ),
    ),
    "cu121": Profile(
        name="cu121",
        cuda_version="12.1.1",
        torch_local_version="cu121",
        torch_index_url="https://download.pytorch.org/whl/cu121",
        reason=(
            "the seed's CUDA 12.1 and SteadyDancer's own torch 2.5.1+cu121 setup, for hosts "
            "whose driver predates CUDA 12.4; no cudnn8 flavour, which puts cuDNN 8 in /usr/lib"
        ),
    ),
}
DEFAULT_PROFILE = "cu124"

PYTHON_VERSION = "3.11.18"
PYTHON_REASON = (
    "3.11 sits inside every constraint (torch 2.5.1, xformers and triton wheels stop at "
    "3.12, xtcocotools ships cp310/cp311 only); uv's managed CPython gives an exact patch "
    "release with headers, where Ubuntu 22.04's python3.11 is a 3.11.0 release candidate"
)
PYTHON_TAG = "cp311"

UV_VERSION = "0.13.9"
UV_IMAGE = f"ghcr.io/astral-sh/uv:{UV_VERSION}"
UV_REASON = "one resolver for the image, the lock and the tests; copied from its release image"

ENGINE_UV_VERSION = "0.10.3"
ENGINE_UV_REASON = (
    "the uv the engine's Python runtime locks and installs the module with "
    "(sdk/python/runtime/images/uv/Dockerfile at the engine version); uv.lock is made with it"
)
DAGGER_IO_VERSION = "0.21.8"
DAGGER_IO_SDIST_SHA256 = "f0d2791b748d0157245d33ab30ad636918d7a619f064a08088a1cbeb7ff456e5"
"""The dagger-io release matching dagger.json's engineVersion, from which ci.module_lock makes
the SDK the engine vendors into sdk/ when no engine has written it."""

FETCH_IMAGE = "python:3.11.14-slim-trixie"
FETCH_IMAGE_REASON = (
    "a small Python for the model fetcher and the engine's lock, with uv copied in; uv's own "
    "python3.11-bookworm-slim flavour is no longer published (bookworm dropped from uv 0.10.0 on)"
)

PULLED_IMAGES: dict[str, str] = {
    **{
        profile.devel_image: "a tag of NVIDIA's nvidia/cuda repository on Docker Hub; "
        "runpod/pytorch's 2.5.1 CUDA 12.x images are built FROM the same tags"
        for profile in PROFILES.values()
    },
    **{
        profile.runtime_image: "a tag of NVIDIA's nvidia/cuda repository on Docker Hub: every "
        "CUDA release is published as base, runtime and devel for each Ubuntu"
        for profile in PROFILES.values()
    },
    UV_IMAGE: "uv's release workflow publishes the distroless ghcr.io/astral-sh/uv:<version> "
    "image, holding /uv, for every release",
    FETCH_IMAGE: "Docker Hub's python library lists <patch>-slim-trixie tags for 3.11 from "
    "3.11.14 (October 2025) on; patch tags stay pullable",
}
"""Every image the module pulls, with where its existence was checked."""

TORCH = Pin("torch", "2.5.1", "the version SteadyDancer and its OpenMMLab stack were released on")
TORCHVISION = Pin("torchvision", "0.20.1", "the only torchvision that requires torch==2.5.1")
TORCHAUDIO = Pin("torchaudio", "2.5.1", "the torchaudio that requires torch==2.5.1")
TORCH_TRIO = (TORCH, TORCHVISION, TORCHAUDIO)
TORCH_CXX11_ABI = False
"""PyPI and download.pytorch.org builds of torch 2.5.1 use the pre-C++11 ABI."""

NUMPY = Pin("numpy", "1.26.4", "xtcocotools' wheel and chumpy need numpy 1; ComfyUI needs >=1.25")
OPENCV = Pin(
    "opencv-python",
    "4.11.0.86",
    "the last OpenCV that allows numpy<2; the only OpenCV distribution in the image",
)
SETUPTOOLS = Pin(
    "setuptools",
    "80.9.0",
    "setuptools 82 removed pkg_resources, which mmcv's setup.py, mmengine and openmim import",
)
BUILD_TOOLS = (
    Pin("wheel", "0.48.0", "builds the mmcv and flash-attn wheels"),
    Pin("ninja", "1.13.2", "parallel CUDA compilation in torch's cpp_extension"),
    Pin("psutil", "7.2.2", "flash-attn's setup.py sizes its jobs with it"),
    Pin("packaging", "26.4", "imported by flash-attn's and mmcv's setup.py"),
)

COMFY_KITCHEN = Pin(
    "comfy-kitchen",
    "0.2.27",
    "ComfyUI asks for >=0.2.3; 0.2.28 and later fail at import on torch < 2.7",
)
TRANSFORMERS = Pin(
    "transformers",
    "4.57.6",
    "transformers 5 disables PyTorch below 2.6, and WanVideoWrapper then fails to import",
)
DIFFUSERS = Pin(
    "diffusers",
    "0.38.0",
    "0.39 requires torch>=2.6; later releases call torch.accelerator, which 2.5.1 lacks",
)

ONNXRUNTIME_GPU = Pin(
    "onnxruntime-gpu",
    "1.20.2",
    "CUDA 12 and cuDNN 9 like torch 2.5.1; 1.27 and later are CUDA 13 builds",
)

RUNPOD = Pin(
    "runpod",
    "1.12.0",
    "RunPod's SDK for the serverless worker; 2.0 is still a release candidate",
)

MMENGINE = Pin("mmengine", "0.10.7", "accepted by both mmdet 3.3 (<1.0) and mmpose 1.3 (<=1.0)")
MMCV = Pin(
    "mmcv",
    "2.1.0",
    "mmdet 3.3 rejects mmcv 2.2; no prebuilt wheel exists for torch 2.5, so it is compiled",
)
MMDET = Pin("mmdet", "3.3.0", "accepts mmcv 2.1.0 (<2.2.0); 3.1 rejects it")
MMPOSE = Pin("mmpose", "1.3.2", "the latest; ships the DWPose configs")
CHUMPY = Pin("chumpy", "0.70", "an mmpose requirement whose sdist only builds without isolation")
XTCOCOTOOLS = Pin("xtcocotools", "1.14.3", "the mmpose dependency with cp311 wheels")
DWPOSE = Pin(
    "controlnet-aux",
    "0.0.10",
    "its DWposeDetector runs DWPose on mmpose and mmdet, the OpenMMLab stack built here",
)
OPENMMLAB_PACKAGES = (MMENGINE, MMDET, MMPOSE, XTCOCOTOOLS, DWPOSE)

MMCV_CUDA_ARCHS = "8.0;8.6;8.9;9.0+PTX"
"""Ampere (A100, A10/3090), Ada (L40S/4090) and Hopper (H100/H200), plus PTX for newer GPUs."""
MMCV_MAX_JOBS = 8
"""Parallel nvcc jobs for mmcv: about 2 GB each, so a 16 GB builder does not swap."""
OPENMMLAB_IMPORTS = (
    "mmcv",
    "mmcv.ops",
    "mmdet",
    "mmpose",
    "mmdet.apis",
    "mmpose.apis",
    "controlnet_aux.dwpose.wholebody",
)

FLASH_ATTN = Pin(
    "flash-attn",
    "2.7.4.post1",
    "built on CUDA 12.4.1 for torch 2.5 (the tuple SteadyDancer runs); 2.8 wheels need CUDA 12.9",
)
FLASH_ATTN_RELEASES = "https://github.com/Dao-AILab/flash-attention/releases/download"
FLASH_ATTN_CUDA_ARCHS = "80;90"
"""sm80 kernels also run on sm86/sm89; sm90 for Hopper. Fewer archs keep a source build bounded."""
FLASH_ATTN_MAX_JOBS = 4
"""Each flash-attn nvcc job peaks at 8-9 GB (its setup.py says so)."""
FLASH_ATTN_BUILD_TIMEOUT_S = 3 * 60 * 60
"""A source build that has not finished in three hours gives way to xformers."""
XFORMERS = Pin(
    "xformers",
    "0.0.29.post1",
    "one of the three xformers releases that require torch==2.5.1; unpinned it upgrades torch",
)

COMFYUI = GitPin(
    name="ComfyUI",
    url="https://github.com/comfyanonymous/ComfyUI",
    commit="3cd7b32f1b7e7e90395cefe7d9f9b1f89276d8ce",
    date="2026-01-07",
    reason=(
        "v0.8.0+2: before the torch 2.7 minimum (August 2026) and comfy-kitchen 0.2.28; "
        "seen loading all four node packs below"
    ),
)
NODE_PACKS: tuple[GitPin, ...] = (
    GitPin(
        name="ComfyUI-WanVideoWrapper",
        url="https://github.com/kijai/ComfyUI-WanVideoWrapper",
        commit="e21fe20a4d2bc67370426be0e533a0e56c9f5cb6",
        date="2026-01-31",
        reason=(
            "has WanVideoAddSteadyDancerEmbeds and the GGUF dtype fix; the next commit "
            "targets a newer ComfyUI"
        ),
    ),
    GitPin(
        name="ComfyUI-WanAnimatePreprocess",
        url="https://github.com/kijai/ComfyUI-WanAnimatePreprocess",
        commit="1a35b81a418bbba093356ad19b19bf2a76a24f4e",
        date="2025-12-22",
        reason="pose detection with alignment to the reference (PoseDetectionOneToAllAnimation)",
    ),
    GitPin(
        name="ComfyUI-KJNodes",
        url="https://github.com/kijai/ComfyUI-KJNodes",
        commit="955a93b230c5e2130316beb5d502fc46685b6670",
        date="2026-01-30",
        reason="image resize and batch nodes; the next commit needs a newer ComfyUI io.Schema",
    ),
    GitPin(
        name="ComfyUI-VideoHelperSuite",
        url="https://github.com/Kosinkadink/ComfyUI-VideoHelperSuite",
        commit="993082e4f2473bf4acaf06f51e33877a7eb38960",
        date="2026-01-08",
        reason="VHS_LoadVideo and VHS_VideoCombine, contemporary with the ComfyUI pin",
    ),
)

PATCHES = {"ComfyUI-WanVideoWrapper": "docker/steadydancer/build/wanvideo.patch"}
"""Pack name -> its patch in this repository, applied on the pinned tree at build time:
SteadyDancer's three-pass pose guidance in the sampler and the pose CLIP features the model
reads (clip_fea_c); fp8 matmul's merged weights keeping a per-tensor scale (compute=fp8)."""
OFFICIAL_POSE_PACK = "ComfyUI-SteadyDancer-Official"
"""docker/steadydancer/nodes/, installed beside the packs under this name."""

EXCLUDED_DISTRIBUTIONS: dict[str, str] = {
    "onnxruntime": "the CPU build shares onnxruntime-gpu's package directory and hides CUDA",
    "opencv-python-headless": "a second OpenCV overwrites cv2; opencv-python provides it",
    "opencv-contrib-python": "a second OpenCV overwrites cv2; opencv-python provides it",
}
"""Distributions node packs ask for that must never be installed, with why."""


def constraints(profile: Profile) -> list[str]:
    """Pins every install in the image is held to, so nothing moves the torch stack."""
    return [
        *profile.torch_requirements(),
        NUMPY.requirement,
        OPENCV.requirement,
        SETUPTOOLS.requirement,
        ONNXRUNTIME_GPU.requirement,
        COMFY_KITCHEN.requirement,
        TRANSFORMERS.requirement,
        DIFFUSERS.requirement,
        MMENGINE.requirement,
        MMCV.requirement,
        MMDET.requirement,
        MMPOSE.requirement,
        XTCOCOTOOLS.requirement,
        XFORMERS.requirement,
        FLASH_ATTN.requirement,
        RUNPOD.requirement,
    ]


def overrides() -> list[str]:
    """uv overrides that drop the excluded distributions wherever they are required."""
    return [f'{name} ; sys_platform == "never"' for name in EXCLUDED_DISTRIBUTIONS]


def constraints_text(profile: Profile) -> str:
    """constraints() as the file uv and pip read."""
    return "\n".join(constraints(profile)) + "\n"


def overrides_text() -> str:
    """overrides() as the file uv reads."""
    return "\n".join(overrides()) + "\n"


def table() -> list[tuple[str, str, str]]:
    """(component, pinned value, reason) for every pin, in layer order."""
    rows = [
        *((f"base ({p.name})", p.runtime_image, p.reason) for p in PROFILES.values()),
        *((f"builders ({p.name})", p.devel_image, BUILDER_REASON) for p in PROFILES.values()),
        ("python", PYTHON_VERSION, PYTHON_REASON),
        ("uv", UV_VERSION, UV_REASON),
        ("fetch image", FETCH_IMAGE, FETCH_IMAGE_REASON),
        *((pin.name, pin.version, pin.reason) for pin in (SETUPTOOLS, *BUILD_TOOLS)),
        *((pin.name, pin.version, pin.reason) for pin in (*TORCH_TRIO, NUMPY, OPENCV)),
        *(
            (pin.name, pin.version, pin.reason)
            for pin in (MMCV, *OPENMMLAB_PACKAGES, CHUMPY, ONNXRUNTIME_GPU)
        ),
        ("TORCH_CUDA_ARCH_LIST (mmcv)", MMCV_CUDA_ARCHS, "Ampere, Ada and Hopper, plus PTX"),
        *((pin.name, pin.version, pin.reason) for pin in (FLASH_ATTN, XFORMERS)),
        *((pin.name, pin.commit, pin.reason) for pin in (COMFYUI, *NODE_PACKS)),
        (RUNPOD.name, RUNPOD.version, RUNPOD.reason),
        *((pin.name, pin.version, pin.reason) for pin in (COMFY_KITCHEN, TRANSFORMERS, DIFFUSERS)),
        *(
            (f"excluded: {name}", "never installed", why)
            for name, why in EXCLUDED_DISTRIBUTIONS.items()
        ),
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Print every pin with the reason it was chosen.")
    parser.parse_args(argv)
    for component, value, reason in table():
        print(f"{component:32} {value:44} {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
