"""Files of this repository, as the engine loaded them with the module."""

from __future__ import annotations

import dagger
from dagger import dag

from ci import paths


def project() -> dagger.Directory:
    return dag.current_module().source()


def tool_path(name: str) -> str:
    return f"{paths.TOOLS_DIR}/{name}.py"


def with_tool(ctr: dagger.Container, name: str) -> dagger.Container:
    """Copy one program from docker/steadydancer/ on its own, so only its edits bust the layer."""
    return ctr.with_file(tool_path(name), project().file(f"docker/steadydancer/{name}.py"))
