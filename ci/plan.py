"""Print the layers of a build, their pins and what each layer's cache depends on, with no engine.

Usage: python -m ci.plan [--variant fp8] [--profile cu124] [--attention auto] [--no-bake-models]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from steadydancer import catalog

from ci import caches, paths, pins, registries, sizes
from ci.installs import Installer
from ci.layers import attention as attention_layer
from ci.layers import models as models_layer
from ci.layers.base import APT_PACKAGES
from ci.layers.openmmlab import MMCV_BUILD_ENV
from ci.options import BuildOptions, InputError


@dataclass(frozen=True)
class LayerPlan:
    name: str
    contents: list[str]
    cache_key: str


def _env(env: dict[str, str]) -> str:
    return " ".join(f"{name}={value}" for name, value in sorted(env.items()))


def _attention(options: BuildOptions) -> list[str]:
    xformers = f"{pins.XFORMERS.requirement} from PyPI"
    if options.attention == attention_layer.XFORMERS:
        return [xformers]
    url = attention_layer.flash_attn_wheel_url(options.profile)
    source_build = (
        f"else a source build of {pins.FLASH_ATTN.requirement} "
        f"({_env(attention_layer.FLASH_BUILD_ENV)}, stopped after "
        f"{pins.FLASH_ATTN_BUILD_TIMEOUT_S // 3600} h)"
    )
    last = (
        "else the build fails" if options.attention == attention_layer.FLASH else f"else {xformers}"
    )
    return [f"flash-attn wheel {url}", source_build, last]


def _gb(size: int | None) -> str:
    return f"{size / 1e9:6.2f} GB" if size is not None else "     ? GB"


def _size(files: tuple[catalog.ModelFile, ...]) -> str:
    known = [entry.size for entry in files if entry.size is not None]
    unknown = len(files) - len(known)
    text = f"{sum(known) / 1e9:.2f} GB recorded"
    return text + (f", {unknown} file(s) without a recorded size" if unknown else "")


def layers(options: BuildOptions) -> list[LayerPlan]:
    profile = options.profile
    files = catalog.files_for(options.variant)
    model_lines = [
        f"{_gb(entry.size)}  {entry.repo}/{entry.path} -> models/{entry.target}"
        for entry in models_layer.layer_order(options.variant)
    ] + [f"not baked: {entry.refusal}" for entry in catalog.refused(options.variant)]
    plan = [
        LayerPlan(
            "base",
            [
                f"{profile.runtime_image} (builders compile in {profile.devel_image})",
                f"apt: {' '.join(APT_PACKAGES)}",
                f"uv {pins.UV_VERSION}, Python {pins.PYTHON_VERSION} in {paths.VENV}",
                f"{pins.SETUPTOOLS.requirement} "
                + " ".join(pin.requirement for pin in pins.BUILD_TOOLS),
            ],
            f"the base image tag, the apt list, uv and Python versions; volumes "
            f"{caches.PREFIX}-apt-*-{profile.name}, {caches.PREFIX}-uv",
        ),
        LayerPlan(
            "torch",
            [" ".join(profile.torch_requirements()) + f" {pins.NUMPY.requirement}"]
            + ([f"index {profile.torch_index_url}"] if profile.torch_index_url else []),
            "base + the torch trio's lock entries",
        ),
        LayerPlan(
            "openmmlab",
            [
                f"{pins.MMCV.requirement} compiled: {_env(MMCV_BUILD_ENV)}",
                " ".join(
                    pin.requirement for pin in (*pins.OPENMMLAB_PACKAGES, pins.CHUMPY, pins.OPENCV)
                ),
                f"import check: {', '.join(pins.OPENMMLAB_IMPORTS)}",
            ],
            f"torch + the OpenMMLab packages' lock entries; the mmcv wheel is kept on volume "
            f"{caches.PREFIX}-wheels, so a rebuild of this layer compiles nothing",
        ),
        LayerPlan(
            "attention",
            _attention(options),
            "openmmlab + the branch chosen; a source-built wheel is kept on the wheels volume",
        ),
    ]
    if options.bake_models:
        plan.append(
            LayerPlan(
                "models",
                [
                    f"variant {options.variant}: {len(files)} files, {_size(files)}, one layer "
                    "per file (files every variant shares first)",
                    *model_lines,
                ],
                "each file's catalog entry and fetch_models.py only (fetched in a container of "
                f"its own): the same file is the same layer in every variant; volume "
                f"{caches.PREFIX}-huggingface",
            )
        )
    plan += [
        LayerPlan(
            "comfyui",
            [f"{pins.COMFYUI.url} @ {pins.COMFYUI.commit} ({pins.COMFYUI.date})"],
            "the layers above + its requirements (their lock entries, or its requirements.txt "
            "when the profile has no lock), then its tree",
        ),
        LayerPlan(
            "nodes",
            [
                *(f"{pack.url} @ {pack.commit} ({pack.date})" for pack in pins.NODE_PACKS),
                f"{pins.RUNPOD.requirement} for the serverless worker, installed on its own",
            ],
            "comfyui + the packs' requirements.txt files together, then their trees; the "
            "worker's SDK by its lock entries",
        ),
        LayerPlan(
            "runtime",
            [
                f"docker/ -> {paths.APP_DIR}, workflows/ -> {paths.WORKFLOWS_DIR}",
                f"port {paths.COMFYUI_PORT}, entrypoint tini -- python -m steadydancer.entrypoint",
            ],
            "nodes + the contents of docker/ and workflows/; labels and environment",
        ),
    ]
    return plan


CLI_NO_BAKE = "--no-bake-models"
"""This command's spelling of leaving the models out (dagger call: --bake-models=false)."""


def render(
    options: BuildOptions,
    registry: str | None = None,
    layer_limit_gb: float = 0,
    no_bake: str = registries.DAGGER_NO_BAKE,
) -> str:
    baked = "baked" if options.bake_models else "fetched at boot"
    lines = [
        f"steady-dancer build: variant {options.variant}, profile {options.profile.name}, "
        f"attention {options.attention}, models {baked}",
        f"python packages: {Installer.for_profile(options.profile).describe()}; each layer "
        "that installs ends with a drift check of the pinned packages",
        "",
    ]
    for number, layer in enumerate(layers(options), start=1):
        lines.append(f"{number}. {layer.name}")
        lines += [f"     {line}" for line in layer.contents]
        lines.append(f"     cache: {layer.cache_key}")
    lines += ["", "estimated size, layer by layer (compressed, as pushed and pulled):"]
    lines += [
        f"  {line}"
        for line in sizes.summary(
            options.profile, options.variant, options.attention, options.bake_models
        )
    ]
    if registry:
        lines += ["", f"publish to {registry}:"]
        lines += [
            f"  {line}"
            for line in registries.report(
                registry, options.variant, options.bake_models, layer_limit_gb, no_bake
            )
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--variant",
        default=catalog.DEFAULT_VARIANT,
        help=f"model variant, one of {', '.join(sorted(catalog.VARIANTS))}",
    )
    parser.add_argument(
        "--profile",
        default=pins.DEFAULT_PROFILE,
        help=f"CUDA profile, one of {', '.join(sorted(pins.PROFILES))}",
    )
    parser.add_argument(
        "--attention",
        default="auto",
        help=f"attention library, one of {', '.join(attention_layer.MODES)} "
        "(auto: flash-attn, else xformers)",
    )
    parser.add_argument(
        "--registry",
        metavar="ADDRESS",
        help="an image address (ghcr.io/me/steadydancer:fp8) or a registry's host (ghcr.io): "
        "check each layer against that registry's per-layer limit",
    )
    parser.add_argument(
        "--layer-limit-gb",
        type=float,
        default=0,
        help="with --registry: the registry's per-layer limit, when it is not a known one",
    )
    parser.add_argument(
        "--no-bake-models",
        action="store_true",
        help="plan an image without models (pods that fetch them to a volume at boot)",
    )
    args = parser.parse_args(argv)
    try:
        options = BuildOptions.parse(
            args.variant, args.profile, args.attention, bake_models=not args.no_bake_models
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(options, args.registry, args.layer_limit_gb, CLI_NO_BAKE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
