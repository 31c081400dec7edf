"""The SteadyDancer workflows as ComfyUI's page opens them.

The oracle is ComfyUI's own frontend (the lock's comfyui-frontend-package) in a real
headless Chromium (Debian's package), served by tests/comfy_page.py against the recorded
`/object_info`: each editor-format file is opened, and the test fails on a node class the
page does not know, a list value the page does not offer (a model file missing from its
loader's list), a dialog or toast the page raises, or a prompt the page builds from the
graph that differs from the API workflow the smoke client queues.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from steadydancer import catalog, storage, workflows

from ci import ui_workflows
from tests.comfy_page import KV_RESTORE
from tests.dagger_offline import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OPEN = (
    """async (graph) => {
  await window.app.loadGraphData(graph);
  ("""
    + KV_RESTORE
    + """)(graph);
  await new Promise(done => setTimeout(done, 1000));
  const nodes = window.app.graph._nodes;
  const unknown = nodes.filter(n => !window.LiteGraph.registered_node_types[n.type]);
  const offered = [];
  for (const n of nodes) for (const w of (n.widgets || [])) {
    const values = w.options?.values;
    if (Array.isArray(values) && !values.includes(w.value)) {
      offered.push({node: n.id, type: n.type, widget: w.name, value: String(w.value)});
    }
  }
  const {output} = await window.app.graphToPrompt();
  const shown = [...document.querySelectorAll('.p-dialog, .p-toast-message')]
    .map(e => e.innerText.trim()).filter(Boolean);
  return {unknown: unknown.map(n => n.type), offered, output, shown};
}"""
)


def api_prompt(name: str, variant: str) -> dict[str, Any]:
    workflow = workflows.load(name, REPO / "workflows")
    values = {
        p.name: ui_workflows.PLACEHOLDERS[p.type]
        for p in workflow.parameters.values()
        if p.type in ui_workflows.PLACEHOLDERS
    }
    return workflows.render(workflow, values, variant, ui_workflows.ATTENTION)


def differences(api: dict[str, Any], page: dict[str, Any]) -> list[str]:
    """Where the page's prompt from the editor file differs from the API workflow. The inputs
    VideoHelperSuite's page script adds to its nodes (the video format's options) are not on
    the page here: of those nodes, the inputs the page has are compared."""
    ids = {key: number for number, key in enumerate(sorted(api, key=int), start=1)}
    found = []
    for key, node in api.items():
        got = page.get(str(ids[key]))
        if got is None or got["class_type"] != node["class_type"]:
            found.append(f"node {key} {node['class_type']}: {got and got['class_type']}")
            continue
        for name, value in node["inputs"].items():
            linked = isinstance(value, list)
            scripted = node["class_type"] in ui_workflows.KV_STATE
            if scripted and not linked and name not in got["inputs"]:
                continue
            want = [str(ids[value[0]]), value[1]] if linked else value
            if got["inputs"].get(name) != want:
                found.append(
                    f"{key} {node['class_type']}.{name}: {want!r} != {got['inputs'].get(name)!r}"
                )
    return found


def test_the_editor_files_are_what_the_workflows_give() -> None:
    assert ui_workflows.main(["--check"]) == 0, "run: .venv/bin/python -m ci.ui_workflows"
    for variant in catalog.VARIANTS:
        names = sorted(p.stem for p in (ui_workflows.UI_DIR / variant).glob("*.json"))
        assert names == ui_workflows.steadydancer_workflows()


def test_the_boot_lists_the_pods_variant_in_the_workflow_browser_and_keeps_edits(
    tmp_path: Path,
) -> None:
    layout = storage.Layout(tmp_path / "ComfyUI", tmp_path / "workspace")
    source = ui_workflows.UI_DIR / "fp16"
    written = storage.install_workflows(layout, source)
    browser = tmp_path / "workspace" / "steadydancer" / "user" / "default" / "workflows"
    assert sorted(p.name for p in written) == sorted(p.name for p in browser.iterdir())
    assert (browser / "steadydancer-dance.json").read_text() == (
        source / "steadydancer-dance.json"
    ).read_text()
    (browser / "steadydancer-dance.json").write_text('{"edited": true}')
    assert storage.install_workflows(layout, source) == []
    assert json.loads((browser / "steadydancer-dance.json").read_text()) == {"edited": True}


def test_the_pack_carries_the_default_variants_files_as_example_workflows() -> None:
    """ComfyUI lists a custom node pack's example_workflows/ in its template browser; the
    nodes layer copies docker/steadydancer/nodes/ whole into custom_nodes/."""
    examples = REPO / "docker" / "steadydancer" / "nodes" / "example_workflows"
    for name in ui_workflows.steadydancer_workflows():
        default = ui_workflows.UI_DIR / catalog.DEFAULT_VARIANT / f"{name}.json"
        assert (examples / f"{name}.json").read_text() == default.read_text()


def test_the_frontend_is_the_one_the_image_serves() -> None:
    from importlib.metadata import version

    lock = (REPO / "ci" / "locks" / "cu124.txt").read_text()
    assert f"comfyui-frontend-package=={version('comfyui-frontend-package')} " in lock


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian: apt install chromium)")
def test_comfyuis_page_opens_every_workflow_without_a_warning(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.comfy_page import Page, serve

    failures: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for variant in catalog.VARIANTS:
                page_server = Page(variant)
                with serve(page_server) as url:
                    page = browser.new_page(viewport={"width": 1600, "height": 1000})
                    page.goto(url)
                    page.wait_for_function("() => window.app?.graph && window.LiteGraph")
                    for name in ui_workflows.steadydancer_workflows():
                        graph = json.loads(
                            (ui_workflows.UI_DIR / variant / f"{name}.json").read_text()
                        )
                        seen = page.evaluate(OPEN, graph)
                        # The upload slots hold placeholders: the person picks their own file.
                        offered = [
                            o
                            for o in seen["offered"]
                            if o["value"] not in ui_workflows.PLACEHOLDERS.values()
                        ]
                        problems = [
                            *(f"unknown node {t}" for t in seen["unknown"]),
                            *(f"not offered: {o}" for o in offered),
                            *(f"shown: {text}" for text in seen["shown"]),
                            *differences(api_prompt(name, variant), seen["output"]),
                        ]
                        if problems:
                            failures[f"{variant}/{name}"] = problems
                    page.close()
            # The check fails where it should: fp16's files on a pod that has fp8's.
            with serve(Page("fp8")) as url:
                page = browser.new_page()
                page.goto(url)
                page.wait_for_function("() => window.app?.graph && window.LiteGraph")
                graph = json.loads(
                    (ui_workflows.UI_DIR / "fp16" / "steadydancer-pose.json").read_text()
                )
                offered = page.evaluate(OPEN, graph)["offered"]
                dit = next(e for e in catalog.files_for("fp16") if e.key.startswith("steadydancer"))
                assert workflows.model_value(dit) in [o["value"] for o in offered]
        finally:
            browser.close()
    assert failures == {}


def test_a_pods_first_boot_puts_them_in_the_browser(tmp_path: Path) -> None:
    """The entrypoint itself, as tests/test_entrypoint.py boots it: the variant's files land
    in the volume's user folder, which ComfyUI is pointed at."""
    from tests.hub_server import Hub
    from tests.test_entrypoint import ALL, Root

    root = Root(tmp_path, Hub())
    root.workspace.mkdir()
    root.bake(*ALL)
    result = root.boot()
    assert result.returncode == 0, result.stdout + result.stderr
    browser = root.workspace / "steadydancer" / "user" / "default" / "workflows"
    names = sorted(p.name for p in browser.iterdir())
    assert names == [f"{name}.json" for name in ui_workflows.steadydancer_workflows()]
    assert f"storage: {browser / names[0]} in ComfyUI's workflow browser" in result.stdout
