"""The shipped workflows in ComfyUI's own page format: nodes placed, grouped and annotated.

`workflows/*.json` are API-format prompts, what the smoke client and the serverless worker
queue. ComfyUI's page opens the other format, the graph as its editor saves it: each node
with a position, its sockets, its widget values in the order the page builds the widgets
(the order `/object_info` lists the inputs), and links by number. This writes that format
for each SteadyDancer workflow and variant, from the prompt rendered for the variant and
the recorded `/object_info` (tests/data/object_info.json), with a note that says what to
change; the nodes layer's pack carries the default variant's copies as `example_workflows`,
and the boot puts the pod's variant's copies in ComfyUI's workflow browser.

No library turns an API prompt into an editor graph: ComfyUI's page does it only by
dropping a file (unplaced, ungrouped). The layout here is by stage, left to right.

Usage: python -m ci.ui_workflows [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from steadydancer import catalog, workflows

REPO = Path(__file__).resolve().parents[1]
OBJECT_INFO = REPO / "tests" / "data" / "object_info.json"
UI_DIR = REPO / "workflows" / "ui"
EXAMPLES_DIR = REPO / "docker" / "steadydancer" / "nodes" / "example_workflows"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEEDS = {"seed", "noise_seed"}
"""Inputs the page gives a `control_after_generate` widget even when object_info does not ask."""
KV_STATE = {"VHS_LoadVideo", "VHS_VideoCombine", "VHS_LoadImages", "VHS_LoadVideoPath"}
"""Nodes whose own page script (VideoHelperSuite's) saves and restores widgets by name."""
ATTENTION = "sdpa"
"""The attention every GPU runs; the smoke client and the worker render the image's own."""
PLACEHOLDERS = {"image": "example.png", "video": "your-dance.mp4"}
"""What the page shows in the user's upload slots: ComfyUI ships input/example.png."""
STAGES = (
    ("Your inputs: load your picture and video here", ("LoadImage", "VHS_LoadVideo")),
    ("Pose", ("Pose", "Onnx", "DWPose", "ImageResize", "GetImage", "NegativePose")),
    ("Models", ("Loader", "LoraSelect", "SetLoRAs", "BlockSwap")),
    ("Encode", ("Encode", "Embeds", "Guidance")),
    ("Sample and save", ("Sampler", "Decode", "VideoCombine", "Save")),
)
COLUMN, ROW, NODE_WIDTH, TOP = 480, 50, 420, 340
COLORS = ("#3f789e", "#a1309b", "#b58b2a", "#8A8", "#88A")


def stage_of(class_type: str) -> int:
    return next(
        (n for n, (_, marks) in enumerate(STAGES) if any(m in class_type for m in marks)),
        len(STAGES) - 1,
    )


def spec_inputs(info: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """A class's inputs in the order the page makes its sockets and widgets: `input_order`
    where ComfyUI gives it (its `input` maps may come in another order)."""
    inputs, order = info["input"], info.get("input_order", {})
    return [
        (name, inputs[group][name])
        for group in ("required", "optional")
        for name in order.get(group, inputs.get(group, {}))
    ]


def is_widget(spec: list[Any]) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def default(spec: list[Any]) -> Any:
    options = spec[1] if len(spec) > 1 else {}
    if "default" in options:
        return options["default"]
    if isinstance(spec[0], list):
        return spec[0][0] if spec[0] else ""
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(
        spec[0], options.get("options", [""])[0]
    )


def node_height(sockets: int, widgets: int) -> int:
    return 60 + 24 * sockets + 30 * widgets


def convert(prompt: dict[str, Any], object_info: dict[str, Any], note: str) -> dict[str, Any]:
    """The editor graph of an API prompt: every node, link and widget value kept."""
    ids = {key: number for number, key in enumerate(sorted(prompt, key=int), start=1)}
    links: list[list[Any]] = []
    nodes = []
    heights = [TOP] * len(STAGES)
    for key in sorted(prompt, key=int):
        entry = prompt[key]
        info = object_info[entry["class_type"]]
        sockets: list[dict[str, Any]] = []
        values: list[Any] = []
        named: dict[str, Any] = {}
        for name, spec in spec_inputs(info):
            given = entry["inputs"].get(name)
            linked = isinstance(given, list) and len(given) == 2 and isinstance(given[0], str)
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            if linked:
                source, slot = given
                source_info = object_info[prompt[source]["class_type"]]
                link = [len(links) + 1, ids[source], slot, ids[key], len(sockets),
                        source_info["output"][slot]]  # fmt: skip
                links.append(link)
                socket: dict[str, Any] = {"name": name, "type": kind, "link": link[0]}
                if is_widget(spec):
                    socket["widget"] = {"name": name}
                sockets.append(socket)
            elif not is_widget(spec):
                sockets.append({"name": name, "type": kind, "link": None})
            if is_widget(spec):
                value = default(spec) if linked or given is None else given
                values.append(value)
                named[name] = value
                options = spec[1] if len(spec) > 1 else {}
                if kind == "INT" and (options.get("control_after_generate") or name in SEEDS):
                    values.append("fixed")
                if options.get("image_upload"):
                    values.append("image")
        # Inputs a node's own script adds (VideoHelperSuite's format options) keep their value.
        for name, given in entry["inputs"].items():
            if name not in named and not isinstance(given, list):
                named[name] = given
        stage = stage_of(entry["class_type"])
        widgets = len(values)
        height = node_height(len(sockets) + len(info["output"]), widgets)
        nodes.append(
            {
                "id": ids[key],
                "type": entry["class_type"],
                "title": entry.get("_meta", {}).get("title", info.get("display_name") or ""),
                "pos": [40 + COLUMN * stage, heights[stage]],
                "size": [NODE_WIDTH, height],
                "flags": {},
                "order": ids[key] - 1,
                "mode": 0,
                "inputs": sockets,
                "outputs": [
                    {"name": out_name, "type": kind, "links": None, "slot_index": slot}
                    for slot, (out_name, kind) in enumerate(
                        zip(info["output_name"], info["output"], strict=True)
                    )
                ],
                "properties": {"Node name for S&R": entry["class_type"]},
                "widgets_values": named if entry["class_type"] in KV_STATE else values,
            }
        )
        heights[stage] += height + ROW
    _fix_output_links(nodes, links)
    groups = [
        {
            "title": title,
            "bounding": [20 + COLUMN * n, TOP - 60, COLUMN - 20, heights[n] - TOP + 60],
            "color": COLORS[n % len(COLORS)],
            "font_size": 22,
        }
        for n, (title, _) in enumerate(STAGES)
        if heights[n] > TOP
    ]
    note_node = {
        "id": len(nodes) + 1,
        "type": "Note",
        "pos": [40, 20],
        "size": [COLUMN * len(STAGES) - 40, 240],
        "flags": {},
        "order": len(nodes),
        "mode": 0,
        "inputs": [],
        "outputs": [],
        "title": "What to change",
        "properties": {},
        "widgets_values": [note],
    }
    return {
        "last_node_id": len(nodes) + 1,
        "last_link_id": len(links),
        "nodes": [*nodes, note_node],
        "links": links,
        "groups": groups,
        "config": {},
        "extra": {"ds": {"scale": 0.7, "offset": [0, 0]}},
        "version": 0.4,
    }


def _fix_output_links(nodes: list[dict[str, Any]], links: list[list[Any]]) -> None:
    """Each output slot lists the links leaving it, from the link table itself."""
    by_id = {node["id"]: node for node in nodes}
    for link in links:
        output = by_id[link[1]]["outputs"][link[2]]
        output["links"] = [*(output["links"] or []), link[0]]


def note_for(workflow: workflows.Workflow, variant: str, ids: dict[str, int]) -> str:
    lines = [
        f"{workflow.description}",
        "",
        f"Models: the {variant} variant's files (docs/models.md). What to change:",
    ]
    for parameter in workflow.parameters.values():
        where = ", ".join(f"node {ids[node]} {name}" for node, name in parameter.targets)
        help_text = f": {parameter.help}" if parameter.help else ""
        bounds = ""
        if parameter.minimum is not None or parameter.maximum is not None:
            bounds = f" ({parameter.minimum} to {parameter.maximum})"
        lines.append(f"- {parameter.name} ({where}){bounds}{help_text}")
    lines += ["", "Then press Run: the clip is saved to ComfyUI's output folder."]
    return "\n".join(lines)


def render(name: str, variant: str, object_info: dict[str, Any]) -> dict[str, Any]:
    workflow = workflows.load(name, REPO / "workflows")
    values = {
        parameter.name: PLACEHOLDERS[parameter.type]
        for parameter in workflow.parameters.values()
        if parameter.type in PLACEHOLDERS
    }
    prompt = workflows.render(workflow, values, variant, ATTENTION)
    ids = {key: number for number, key in enumerate(sorted(prompt, key=int), start=1)}
    return convert(prompt, object_info, note_for(workflow, variant, ids))


def steadydancer_workflows() -> list[str]:
    return [name for name in workflows.names(REPO / "workflows") if name.startswith("steady")]


def expected() -> dict[Path, str]:
    """Every file this writes, with its text."""
    object_info = json.loads(OBJECT_INFO.read_text())
    files = {}
    for variant in catalog.VARIANTS:
        for name in steadydancer_workflows():
            text = json.dumps(render(name, variant, object_info), indent=1) + "\n"
            files[UI_DIR / variant / f"{name}.json"] = text
            if variant == catalog.DEFAULT_VARIANT:
                files[EXAMPLES_DIR / f"{name}.json"] = text
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail if stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected().items():
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(REPO)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
