"""The module as the engine would register it: every function listed and documented.

Registration runs the SDK's own code up to its final `id()` call, which needs an
engine; that one call is replaced by returning the lazy definition itself.
"""

from __future__ import annotations

import re

import anyio
import pytest
from dagger.client import gen
from dagger.mod import default_module
from steadydancer import catalog, workflows

import ci.main  # noqa: F401  (registers the functions)
from ci import pins
from ci import smoke_test as on_engine
from ci.layers.attention import MODES
from tests.dagger_offline import REPO, fields, render

ENUM_MEMBER_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
"""The engine's rule for an enum member's name (core/typedef.go, validateEnumMember)."""

FUNCTIONS = {
    "validate",
    "smoke_test",
    "check_models",
    "lock_models",
    "lock",
    "base",
    "torch",
    "openmmlab",
    "attention",
    "comfyui",
    "nodes",
    "models",
    "build",
    "plan",
    "publish",
    "dance",
    "doctor",
}


@pytest.fixture(scope="module")
def registration():
    async def lazy_id(self):  # type: ignore[no-untyped-def]
        return self

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gen.Module, "id", lazy_id)
        return anyio.run(default_module()._typedefs)


def functions(registration) -> dict[str, list]:
    (main_object,) = [f.args["object"] for f in fields(registration) if f.name == "withObject"]
    found = {}
    for field in fields(main_object):
        if field.name == "withFunction":
            chain = fields(field.args["function"])
            found[chain[0].args["name"]] = chain[1:]
    return found


def test_every_phase_is_a_documented_function(registration) -> None:
    registered = functions(registration)
    assert set(registered) == FUNCTIONS
    for name, chain in registered.items():
        descriptions = [f.args["description"] for f in chain if f.name == "withDescription"]
        assert descriptions and descriptions[0].strip(), f"{name} has no description"
        for arg in (f.args for f in chain if f.name == "withArg"):
            assert arg.get("description"), f"{name} --{arg['name']} has no Doc"


def enums(registration) -> dict[str, dict[str, str]]:
    """Each registered enum: member name -> value."""
    found = {}
    for field in fields(registration):
        if field.name == "withEnum":
            chain = fields(field.args["enum"])
            members = {f.args["name"]: f.args["value"] for f in chain if f.name == "withEnumMember"}
            (name,) = [f.args["name"] for f in chain if f.name == "withEnum"]
            found[name] = members
    return found


def argument_types(registration, function: str) -> dict[str, str]:
    """Each argument's type: an enum's or object's name, else the kind."""
    types = {}
    for field in functions(registration)[function]:
        if field.name == "withArg":
            (kind,) = [
                f
                for f in fields(field.args["typeDef"])
                if f.name in {"withEnum", "withKind", "withObject"}
            ]
            types[field.args["name"]] = kind.args.get("name") or kind.args["kind"]
    return types


def test_fixed_choices_are_enums_named_as_users_type_them(registration) -> None:
    """The CLI matches enum members by name, so `--profile cu121` keeps working."""
    assert enums(registration) == {
        "ProfileName": {name: name for name in pins.PROFILES},
        "AttentionMode": {mode: mode for mode in MODES},
        "Tier": {tier: tier for tier in on_engine.TIERS},
    }
    for members in enums(registration).values():
        assert all(ENUM_MEMBER_NAME.match(name) for name in members)
    assert argument_types(registration, "build")["profile"] == "ProfileName"
    assert argument_types(registration, "build")["attention"] == "AttentionMode"
    assert argument_types(registration, "smoke_test")["tier"] == "Tier"


def test_variants_and_workflows_stay_strings_because_their_names_cannot_be_members(
    registration,
) -> None:
    names = [*catalog.VARIANTS, *workflows.names(REPO / "workflows")]
    assert [name for name in names if not ENUM_MEMBER_NAME.match(name)]
    smoke = argument_types(registration, "smoke_test")
    assert (smoke["variant"], smoke["workflow"]) == ("STRING_KIND", "STRING_KIND")
    docs = {
        f.args["name"]: f.args["description"]
        for f in functions(registration)["smoke_test"]
        if f.name == "withArg"
    }
    assert all(variant in docs["variant"] for variant in catalog.VARIANTS)
    assert all(name in docs["workflow"] for name in workflows.names(REPO / "workflows"))


def test_build_arguments_and_defaults(registration) -> None:
    chain = functions(registration)["build"]
    args = {f.args["name"]: f.args.get("defaultValue") for f in chain if f.name == "withArg"}
    assert args == {
        "variant": '"fp8"',
        "profile": '"cu124"',
        "attention": '"auto"',
        "bake_models": "true",
        "hf_token": "null",
    }


def test_module_description_comes_from_the_package_docstring(registration) -> None:
    (description,) = [
        f.args["description"] for f in fields(registration) if f.name == "withDescription"
    ]
    assert description.startswith("Builds, checks and smoke-tests the SteadyDancer ComfyUI image")


def test_registration_renders_to_valid_graphql(registration) -> None:
    assert render(registration)[-1].startswith("{\n  module {")


def test_doctor_is_never_cached_and_branch_choices_last_one_session(registration) -> None:
    policies = {
        name: [f.args for f in chain if f.name == "withCachePolicy"]
        for name, chain in functions(registration).items()
    }
    assert policies["doctor"] == [{"policy": "Never"}]
    assert policies["smoke_test"] == [{"policy": "Never"}]
    for name in ("attention", "comfyui", "nodes", "build"):
        assert policies[name] == [{"policy": "PerSession"}], name
    assert policies["plan"] == []


def test_dev_dagger_io_matches_the_engine_version_and_the_module_leaves_it_to_the_engine() -> None:
    import json
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    engine = json.loads((REPO / "dagger.json").read_text())["engineVersion"]
    assert "dagger-io" in project["dependencies"]  # the engine's vendored SDK satisfies it
    assert f"dagger-io=={engine.removeprefix('v')}" in project["optional-dependencies"]["dev"]


def test_the_committed_engine_schema_is_the_engine_version_of_dagger_json() -> None:
    import json

    from tests.dagger_offline import SCHEMA_FILE

    engine = json.loads((REPO / "dagger.json").read_text())["engineVersion"]
    assert SCHEMA_FILE.name == f"dagger-schema-{engine}.graphqls"
    assert SCHEMA_FILE.is_relative_to(REPO)
