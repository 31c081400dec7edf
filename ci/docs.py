"""The passages of README.md and docs/ that state facts the code owns, generated from it.

A passage between `<!-- BEGIN name -->` and `<!-- END name -->` (inline, or spanning lines)
is the output of the generator of that name: model sizes from the catalog, defaults and
option names from the module's functions, the boot's variables from the entrypoint, the
GPU runs from bench/results/. `python -m ci.docs` rewrites every such passage;
`python -m ci.docs --check` fails naming each one that differs, and the tests run it, so
a change to the code that the docs do not follow fails there.

Usage: python -m ci.docs [--check]
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from steadydancer import catalog, entrypoint, vram, workflows
from steadydancer.serve import handler

from ci import pins, plan, registries, sizes
from ci.options import BuildOptions

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs")
PASSAGE = re.compile(
    r"(?P<open><!-- BEGIN (?P<name>[a-z0-9-]+) -->)(?P<body>.*?)(?P<close><!-- END (?P=name) -->)",
    re.S,
)
GB = 10**9
VOLUME_HEADROOM_GB = 10
"""Room on a pod's volume beyond the models: inputs, outputs, ComfyUI's user data."""
CONTAINER_HEADROOM_GB = 10
"""Room on a pod's container disk beyond the image: ComfyUI's temporary files, pip caches."""
RATES_MB_S = (100, 25)
"""Download rates the first boot's duration is worked out for (arithmetic, not measured)."""


def gb(size: int) -> str:
    return f"{size / GB:.2f} GB"


def engine_version() -> str:
    return str(json.loads((REPO / "dagger.json").read_text())["engineVersion"])


def python_version() -> str:
    return (REPO / ".python-version").read_text().strip()


def variant_size(name: str) -> str:
    """A variant's recorded bytes, and what is not recorded, named."""
    variant = catalog.CATALOG_VARIANTS[name]
    text = gb(variant.recorded_size)
    if not variant.unsized:
        return f"{text}, every file sized"
    unsized = ", ".join(f"`{entry.filename}`" for entry in variant.unsized)
    return f"{text} recorded; size unknown: {unsized}"


def volume_gb(name: str) -> int:
    """The volume to attach for a variant fetched at boot: its recorded bytes plus headroom,
    rounded up to 10 GB (an unsized file adds nothing here: the docs name it beside)."""
    recorded = catalog.CATALOG_VARIANTS[name].recorded_size / GB
    return int(math.ceil((recorded + VOLUME_HEADROOM_GB) / 10) * 10)


def volume_text(name: str) -> str:
    return f"{volume_gb(name)} GB"


def registry_limit(address: str) -> int:
    return registries.registry_for(address).layer_limit


def first_boot(name: str) -> str:
    size = catalog.CATALOG_VARIANTS[name].recorded_size
    times = [
        f"about {math.ceil(size / (rate * 10**6) / 60)} min at {rate} MB/s" for rate in RATES_MB_S
    ]
    return f"{gb(size)}: {' or '.join(times)}"


def _role(entry: catalog.ModelFile) -> str | None:
    return {"diffusion_models": "DiT", "text_encoders": "text encoder"}.get(
        entry.folder.split("/")[0]
    )


def variants_table() -> str:
    rows = ["| variant | DiT | text encoder | size |", "|---|---|---|---|"]
    for name, variant in catalog.CATALOG_VARIANTS.items():
        roles = {_role(entry): f"`{entry.filename}`" for entry in variant.files}
        default = " (default)" if name == catalog.DEFAULT_VARIANT else ""
        rows.append(
            f"| `{name}`{default} | {roles.get('DiT', '')} | {roles.get('text encoder', '')} "
            f"| {variant_size(name)} |"
        )
    return "\n".join(rows)


def shared_files() -> str:
    keys = set.intersection(
        *({entry.key for entry in variant.files} for variant in catalog.CATALOG_VARIANTS.values())
    )
    shared = [entry for entry in catalog.all_files() if entry.key in keys]
    return "\n".join(
        f"- `{entry.filename}` ({gb(entry.size) if entry.size else 'size unknown'}) "
        f"in `models/{entry.folder}/`"
        for entry in shared
    )


def plan_sizes() -> str:
    options = BuildOptions.parse()
    lines = sizes.summary(options.profile, options.variant, options.attention, True)
    return "\n".join(f"    {line}" for line in lines)


def layers_table() -> str:
    rows = ["| # | layer | what it holds | its cache depends on |", "|---|---|---|---|"]
    for number, layer in enumerate(plan.layers(BuildOptions.parse()), start=1):
        held = "<br>".join(
            line.replace("|", "\\|")
            for line in layer.contents
            if not line.startswith(" ")  # the models' per-file lines: see models.md
        )
        rows.append(f"| {number} | {layer.name} | {held} | {layer.cache_key} |")
    return "\n".join(rows)


def _main_object() -> type:
    from ci.main import SteadyDancer

    return SteadyDancer


def module_functions() -> dict[str, Callable[..., object]]:
    """The module's functions by their CLI name."""
    return {
        name.replace("_", "-"): member
        for name, member in vars(_main_object()).items()
        if not name.startswith("_") and inspect.isfunction(member)
    }


def cli_name(parameter: str) -> str:
    """An argument as the CLI spells it (the SDK drops a trailing underscore)."""
    return "--" + parameter.rstrip("_").replace("_", "-")


def arguments(function: Callable[..., object]) -> list[tuple[str, object, str, str]]:
    """(CLI name, default or inspect.Parameter.empty, type name, Doc) of each argument."""
    hints = typing.get_type_hints(function, include_extras=True)
    found = []
    for name, parameter in inspect.signature(function).parameters.items():
        if name == "self":
            continue
        hint = hints[name]
        doc = next((meta.documentation for meta in getattr(hint, "__metadata__", ())), "")
        base = typing.get_args(hint)[0] if getattr(hint, "__metadata__", None) else hint
        found.append((cli_name(name), parameter.default, _type_name(base), doc))
    return found


def _type_name(hint: object) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("dagger.client.gen.", "")


def _shown(default: object) -> str:
    if default is inspect.Parameter.empty:
        return "required"
    if hasattr(default, "value"):
        return f"`{default.value}`"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return "none" if default in (None, "") else f"`{default}`"


def functions_table() -> str:
    rows = ["| function | returns | what it does |", "|---|---|---|"]
    for name, function in module_functions().items():
        returns = _type_name(typing.get_type_hints(function)["return"]).split(".")[-1]
        summary = (inspect.getdoc(function) or "").splitlines()[0]
        rows.append(f"| `{name}` | {returns} | {summary} |")
    return "\n".join(rows)


def function_arguments(name: str) -> str:
    rows = ["| argument | default | what it sets |", "|---|---|---|"]
    for option, default, _kind, doc in arguments(module_functions()[name]):
        rows.append(f"| `{option}` | {_shown(default)} | {doc} |")
    return "\n".join(rows)


def environment_table() -> str:
    """The variables the entrypoint's docstring lists, the one place the boot documents them."""
    doc = entrypoint.__doc__ or ""
    section = doc.split("Environment:", 1)[1].split("\n\n", 1)[0]
    rows = ["| variable | effect |", "|---|---|"]
    for line in section.strip().splitlines():
        name, effect = line.strip().split(None, 1)
        rows.append(f"| `{name}` | {effect.strip()} |")
    return "\n".join(rows)


def workflows_table() -> str:
    rows = ["| workflow | what it does | parameters (default) |", "|---|---|---|"]
    for name in workflows.names():
        loaded = workflows.load(name)
        params = ", ".join(
            f"`{key}`"
            + (f" ({spec.default})" if spec.type != "str" and spec.default is not None else "")
            for key, spec in loaded.parameters.items()
        )
        rows.append(f"| `{name}` | {loaded.description} | {params} |")
    return "\n".join(rows)


def image_unbaked() -> int:
    """The estimated bytes of the image without models (Python layers; not the CUDA base)."""
    options = BuildOptions.parse(bake_models=False)
    return sum(layer.size for layer in sizes.python_layers(options.profile, options.attention))


def container_disk_gb() -> int:
    """A pod's container disk: the image without models and headroom, rounded up to 10 GB."""
    return int(math.ceil((image_unbaked() / GB + CONTAINER_HEADROOM_GB) / 10) * 10)


def gpu_memory(variant: str, width: int = 480, height: int = 832, frames: int = 81) -> str:
    """The GPU memory a render needs with no blocks swapped, by the fitted memory model."""
    need = vram.peak_gib(variant, width, height, frames) + vram.HEADROOM_GIB
    return f"{math.ceil(need)} GiB"


def endpoint_timeout() -> str:
    """A serverless job's longest run: the worker's wait for ComfyUI plus its render limit."""
    defaults = inspect.signature(handler.handle).parameters
    total = defaults["ready_timeout"].default + defaults["run_timeout"].default
    return f"{total:.0f} s"


TEST_TIMES = REPO / "ci" / "test_times.json"
"""What the README's test command took from a clean clone, cold and warm, with its command."""


def test_time(kind: str) -> str:
    seconds = float(json.loads(TEST_TIMES.read_text())[f"{kind}_s"])
    return f"{seconds / 60:.0f} min"


def dagger_install() -> str:
    version = engine_version().removeprefix("v")
    return (
        "    curl -fsSL https://dl.dagger.io/dagger/install.sh | "
        f"DAGGER_VERSION={version} BIN_DIR=$HOME/.local/bin sh"
    )


GENERATORS: dict[str, Callable[[], str]] = {
    "engine-version": engine_version,
    "python-version": python_version,
    "dagger-install": dagger_install,
    "image-unbaked": lambda: gb(image_unbaked()),
    "container-disk": lambda: f"{container_disk_gb()} GB",
    "gpu-memory-fp8": lambda: gpu_memory("fp8"),
    "endpoint-timeout": endpoint_timeout,
    "ghcr-limit": lambda: f"{registry_limit('ghcr.io/o/n') / GB:.0f} GB",
    "ecr-limit": lambda: f"{registry_limit('1.dkr.ecr.x.amazonaws.com/n') // registries.MIB:,} MiB",
    "default-variant": lambda: f"`{catalog.DEFAULT_VARIANT}`",
    "tests-cold": functools.partial(test_time, "cold"),
    "tests-warm": functools.partial(test_time, "warm"),
    "refused-files": lambda: (
        "; ".join(entry.refusal for entry in catalog.refused(catalog.DEFAULT_VARIANT)) or "none"
    ),
    "variants": variants_table,
    "shared-files": shared_files,
    "plan-sizes": plan_sizes,
    "layers": layers_table,
    "functions": functions_table,
    "build-arguments": lambda: function_arguments("build"),
    "dance-arguments": lambda: function_arguments("dance"),
    "smoke-test-arguments": lambda: function_arguments("smoke-test"),
    "environment": environment_table,
    "workflows": workflows_table,
    "comfyui-pin": lambda: f"{pins.COMFYUI.commit[:7]} ({pins.COMFYUI.date})",
    "torch-pin": lambda: pins.TORCH.version,
    **{f"size-{name}": functools.partial(variant_size, name) for name in catalog.VARIANTS},
    **{f"volume-{name}": functools.partial(volume_text, name) for name in catalog.VARIANTS},
    **{f"first-boot-{name}": functools.partial(first_boot, name) for name in catalog.VARIANTS},
}


class UnknownPassage(ValueError):
    """A marked passage whose name no generator has."""


def documents(root: Path = REPO) -> list[Path]:
    found = []
    for name in DOCUMENTS:
        path = root / name
        found += sorted(path.glob("*.md")) if path.is_dir() else [path]
    return found


def rewrite(text: str, where: str = "") -> str:
    """The text with every marked passage regenerated; an unknown name is an error."""

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise UnknownPassage(
                f"{where}: no generator for passage {name!r}; known: {', '.join(GENERATORS)}"
            )
        body = GENERATORS[name]()
        if "\n" in match["body"] or "\n" in body:
            body = f"\n{body}\n"
        return f"{match['open']}{body}{match['close']}"

    return PASSAGE.sub(fill, text)


def stale(root: Path = REPO) -> list[str]:
    """Each document and passage whose text is not what the code gives."""
    found = []
    for path in documents(root):
        text = path.read_text()
        fresh = rewrite(text, str(path))
        if fresh != text:
            new = {m["name"]: m["body"] for m in PASSAGE.finditer(fresh)}
            names = [m["name"] for m in PASSAGE.finditer(text) if new[m["name"]] != m["body"]]
            found.append(f"{path.relative_to(root)}: {', '.join(dict.fromkeys(names))}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail naming each stale passage"
    )
    args = parser.parse_args(argv)
    try:
        return _run(args.check)
    except UnknownPassage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(check: bool) -> int:
    if check:
        found = stale()
        for line in found:
            print(f"stale: {line}", file=sys.stderr)
        if found:
            print("run: .venv/bin/python -m ci.docs", file=sys.stderr)
        return 1 if found else 0
    for path in documents():
        text = path.read_text()
        fresh = rewrite(text, str(path))
        if fresh != text:
            path.write_text(fresh)
            print(f"rewrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
