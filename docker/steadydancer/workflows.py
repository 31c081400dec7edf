"""The shipped ComfyUI workflows, their parameters, and the one function that renders a prompt.

workflows/<name>.json is a ComfyUI API-format prompt; workflows/<name>.params.json
is its manifest: each parameter's type, default, bounds and the node inputs it
sets. Model inputs name a catalog role and take the file of the chosen variant;
WanVideoWrapper's attention_mode follows the attention branch of the image unless
the attention parameter names a kernel; the speed parameters (compute, attention,
compile, resident) set their nodes through speed.py.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steadydancer import catalog, speed


def _default_directory() -> Path:
    """The workflows an installed package carries, else the source tree's workflows/."""
    packaged = Path(__file__).resolve().with_name("workflows")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "workflows"


WORKFLOWS_DIR = Path(os.environ.get("STEADYDANCER_WORKFLOWS") or _default_directory())
TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "str": str,
    "image": str,
    "video": str,
}
ATTENTION_MODE = {"flash_attn_2": "flash_attn_2", "xformers": "sdpa", "sdpa": "sdpa"}
"""WanVideoWrapper's attention_mode for each backend; it has no xformers mode, so SDPA."""


class WorkflowError(ValueError):
    """A workflow or parameter that cannot be rendered, named with what would be accepted."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    targets: tuple[tuple[str, str], ...]
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    multiple_of: int | None = None
    remainder: int = 0
    """With multiple_of: the value must be multiple_of * n + remainder."""
    choices: tuple[str, ...] = ()
    """For a str parameter: the values accepted, when the node input is a fixed list."""

    def check(self, value: Any) -> Any:
        matches = isinstance(value, TYPES[self.type]) and not isinstance(value, bool)
        if not matches:
            raise WorkflowError(f"parameter {self.name} must be {self.type}, got {value!r}")
        if self.choices and value not in self.choices:
            raise WorkflowError(
                f"parameter {self.name}={value!r} is not one of {', '.join(self.choices)}"
            )
        if self.minimum is not None and value < self.minimum:
            raise WorkflowError(
                f"parameter {self.name}={value} is below its minimum {self.minimum}"
            )
        if self.maximum is not None and value > self.maximum:
            raise WorkflowError(
                f"parameter {self.name}={value} is above its maximum {self.maximum}"
            )
        if self.multiple_of and (value - self.remainder) % self.multiple_of:
            below = value - (value - self.remainder) % self.multiple_of
            near = [
                str(option)
                for option in (below, below + self.multiple_of)
                if (self.minimum is None or option >= self.minimum)
                and (self.maximum is None or option <= self.maximum)
            ]
            form = (
                f"{self.multiple_of}n+{self.remainder}"
                if self.remainder
                else f"a multiple of {self.multiple_of}"
            )
            raise WorkflowError(
                f"parameter {self.name}={value} must be {form} ({' or '.join(near)} would do)"
            )
        return float(value) if self.type == "float" else value


@dataclass(frozen=True)
class Workflow:
    name: str
    description: str
    prompt: dict[str, Any]
    parameters: dict[str, Parameter]
    models: dict[str, tuple[tuple[str, str], ...]]
    """Catalog folder role -> the node inputs that name its file."""
    attention: tuple[tuple[str, str], ...]
    outputs: tuple[str, ...]
    """The nodes whose files the smoke test collects."""

    @property
    def class_types(self) -> set[str]:
        return {node["class_type"] for node in self.prompt.values()}


def names(directory: Path = WORKFLOWS_DIR) -> list[str]:
    return sorted(
        path.name.removesuffix(".params.json") for path in directory.glob("*.params.json")
    )


def _targets(raw: list[list[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(node), str(name)) for node, name in raw)


def load(name: str, directory: Path = WORKFLOWS_DIR) -> Workflow:
    known = names(directory)
    if name not in known:
        raise WorkflowError(f"unknown workflow {name!r}; shipped: {', '.join(known)}")
    prompt = json.loads((directory / f"{name}.json").read_text())
    manifest = json.loads((directory / f"{name}.params.json").read_text())
    parameters = {
        key: Parameter(
            name=key,
            type=spec["type"],
            default=spec.get("default"),
            targets=_targets(spec["targets"]),
            minimum=spec.get("min"),
            maximum=spec.get("max"),
            help=spec.get("help", ""),
            multiple_of=spec.get("multiple_of"),
            remainder=spec.get("remainder", 0),
            choices=tuple(spec.get("choices", ())),
        )
        for key, spec in manifest["parameters"].items()
    }
    return Workflow(
        name=name,
        description=manifest["description"],
        prompt=prompt,
        parameters=parameters,
        models={role: _targets(raw) for role, raw in manifest.get("models", {}).items()},
        attention=_targets(manifest.get("attention", [])),
        outputs=tuple(manifest["outputs"]),
    )


def model_value(entry: catalog.ModelFile) -> str:
    """How a loader names a file: its path below the folder type (models/<type>/...)."""
    return entry.target.split("/", 1)[1]


def role_of(entry: catalog.ModelFile) -> str:
    """The catalog role a workflow's model input refers to."""
    if entry.key.startswith("steadydancer-"):
        return "steadydancer"
    return entry.key.removesuffix("-bf16").removesuffix("-fp8")


def check_values(workflow: Workflow, values: dict[str, Any]) -> None:
    """Refuse unknown parameters and bad values by name, before anything is built or sent."""
    unknown = sorted(set(values) - set(workflow.parameters))
    if unknown:
        raise WorkflowError(
            f"unknown parameter(s) {', '.join(unknown)} for {workflow.name}; accepted: "
            f"{', '.join(sorted(workflow.parameters))}"
        )
    for name, value in values.items():
        workflow.parameters[name].check(value)


def render(
    workflow: Workflow,
    values: dict[str, Any] | None = None,
    variant: str = catalog.DEFAULT_VARIANT,
    attention: str | None = None,
) -> dict[str, Any]:
    """The prompt with parameters, the variant's model files and the attention mode filled in.

    Unknown or out-of-range parameters, missing required ones (no default), an
    unknown variant or attention branch raise WorkflowError naming them.
    """
    values = dict(values or {})
    check_values(workflow, values)
    prompt = copy.deepcopy(workflow.prompt)

    def put(targets: tuple[tuple[str, str], ...], value: Any) -> None:
        for node, name in targets:
            prompt[node]["inputs"][name] = value

    for parameter in workflow.parameters.values():
        value = values.get(parameter.name, parameter.default)
        if value is None:
            raise WorkflowError(f"parameter {parameter.name} is required by {workflow.name}")
        put(parameter.targets, parameter.check(value))
    if workflow.models:
        try:
            files = catalog.files_for(variant)
        except ValueError as exc:
            raise WorkflowError(str(exc)) from None
        by_role = {role_of(entry): entry for entry in files}
        for role, targets in workflow.models.items():
            if role not in by_role:
                raise WorkflowError(f"variant {variant} has no {role} file for {workflow.name}")
            put(targets, model_value(by_role[role]))
    if workflow.attention:
        branch = attention or os.environ.get("STEADYDANCER_ATTENTION", "xformers")
        if branch not in ATTENTION_MODE:
            raise WorkflowError(
                f"unknown attention branch {branch!r}; accepted: {', '.join(ATTENTION_MODE)}"
            )
        put(workflow.attention, ATTENTION_MODE[branch])
    settings = {
        name: values.get(name, workflow.parameters[name].default)
        for name in speed.PARAMETERS
        if name in workflow.parameters
    }
    try:
        speed.apply(prompt, settings, variant)
    except speed.SpeedError as exc:
        raise WorkflowError(str(exc)) from None
    return prompt
