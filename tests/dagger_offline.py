"""Reading the SDK's lazy query objects without an engine.

Every Dagger object built by the module carries the chain of GraphQL fields the
engine would be asked to resolve (`obj._ctx.selections`). These helpers walk
that chain, and render it to GraphQL documents validated against the engine's
published schema, so a misspelt field or argument fails here as it would there.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import graphql
from dagger.client._core import Field
from gql.dsl import DSLQuery, DSLSchema, dsl_gql

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = Path(
    os.environ.get(
        "DAGGER_SCHEMA",
        # docs/docs-graphql/schema.graphqls of dagger/dagger at the engineVersion of dagger.json
        Path(__file__).resolve().parent / "data" / "dagger-schema-v0.21.8.graphqls",
    )
)


def is_object(value: Any) -> bool:
    return hasattr(value, "_ctx") and hasattr(value._ctx, "selections")


def fields(obj: Any) -> list[Field]:
    return list(obj._ctx.selections)


def ops(obj: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(field.name, field.args) for field in fields(obj)]


def execs(obj: Any) -> list[list[str]]:
    return [args["args"] for name, args in ops(obj) if name == "withExec"]


def index_of(obj: Any, op: str, **match: Any) -> int:
    """Position of the first field `op` whose arguments include `match`."""
    for position, (name, args) in enumerate(ops(obj)):
        if name == op and all(args.get(key) == value for key, value in match.items()):
            return position
    raise AssertionError(f"no {op}({match}) in the chain")


def nested(obj: Any) -> Iterator[tuple[int, str, Any]]:
    """(position, argument name, object) for every Dagger object passed as an argument."""
    for position, field in enumerate(fields(obj)):
        for name, value in field.args.items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                if is_object(item):
                    yield position, name, item


def describe(obj: Any) -> str:
    """A readable one-line form of a chain, nested objects included, for comparisons."""
    parts = []
    for field in fields(obj):
        args = ", ".join(f"{key}={_show(value)}" for key, value in field.args.items())
        parts.append(f"{field.name}({args})")
    return "<" + ".".join(parts) + ">"


def _show(value: Any) -> str:
    if is_object(value):
        return describe(value)
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return repr(value)


def first_difference(left: Any, right: Any) -> int:
    """Index of the first field where two chains differ (nested objects compared in full)."""
    a, b = fields(left), fields(right)
    for position, (x, y) in enumerate(zip(a, b, strict=False)):
        if describe_field(x) != describe_field(y):
            return position
    return min(len(a), len(b))


def describe_field(field: Field) -> str:
    args = ", ".join(f"{key}={_show(value)}" for key, value in field.args.items())
    return f"{field.type_name}.{field.name}({args})"


@functools.cache
def schema() -> graphql.GraphQLSchema:
    if not SCHEMA_FILE.is_file():
        raise FileNotFoundError(
            f"the Dagger engine schema is not at {SCHEMA_FILE}: unset DAGGER_SCHEMA, or set "
            "it to docs/docs-graphql/schema.graphqls of dagger/dagger at v0.21.8"
        )
    return graphql.build_schema(SCHEMA_FILE.read_text())


def _placeholder(value: Any, documents: list[str]) -> Any:
    if is_object(value):
        documents.extend(render(value))
        return f"placeholder-id-{len(documents)}"
    if isinstance(value, list):
        return [_placeholder(item, documents) for item in value]
    return value


def render(obj: Any) -> list[str]:
    """The GraphQL documents that resolve `obj` and every object it takes as an argument.

    Each document is validated against the schema; an error raises AssertionError.
    """
    documents: list[str] = []
    chain = [
        dataclasses.replace(
            field, args={key: _placeholder(value, documents) for key, value in field.args.items()}
        )
        for field in fields(obj)
    ]
    last = chain[-1]
    parent = schema().get_type(last.type_name)
    assert isinstance(parent, graphql.GraphQLObjectType), last.type_name
    returned = graphql.get_named_type(parent.fields[last.name].type)
    leaf_name = "id" if "id" in getattr(returned, "fields", {}) else None
    if leaf_name:
        chain.append(Field(returned.name, leaf_name, {}))
    root = functools.reduce(lambda child, field: field.add_child(child), reversed(chain))
    request = dsl_gql(DSLQuery(root.to_dsl(DSLSchema(schema()))))
    errors = graphql.validate(schema(), request.document)
    assert not errors, [error.message for error in errors]
    documents.append(graphql.print_ast(request.document))
    return documents
