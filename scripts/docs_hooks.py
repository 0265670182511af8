"""MkDocs hooks for the docs site (mkdocs.yml): the API reference page is rendered from
the OpenAPI document the hub itself generates (hub/openapi.py), so it is never written by
hand and cannot drift from the code."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

MARKER = "<!-- openapi -->"


def _document() -> dict[str, Any]:
    from hub.app import create_app
    from hub.openapi import build
    from hub.settings import HubSettings

    with tempfile.TemporaryDirectory() as tmp:
        settings = HubSettings(
            data_dir=Path(tmp), database_url=f"sqlite+aiosqlite:///{tmp}/docs.db"
        )
        return build(create_app(settings))


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return str(schema.get("type", "any"))


def _fields(name: str, schemas: dict[str, Any]) -> list[str]:
    schema = schemas.get(name, {})
    props = schema.get("properties", {})
    if not props:
        return []
    required = set(schema.get("required", []))
    lines = ["| field | type | required |", "|---|---|---|"]
    for field, sub in props.items():
        lines.append(f"| `{field}` | {_type(sub)} | {'yes' if field in required else ''} |")
    return lines


def render(doc: dict[str, Any]) -> str:
    """The reference as markdown: one section per tag, one entry per operation."""
    schemas = doc["components"]["schemas"]
    by_tag: dict[str, list[str]] = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            out = [f"### `{method.upper()} {path}`", ""]
            if op.get("summary"):
                out += [op["summary"], ""]
            if op.get("security") == []:
                out += ["No sign-in needed.", ""]
            params = op.get("parameters", [])
            if params:
                out += ["Parameters: " + ", ".join(f"`{p['name']}` ({p['in']})" for p in params)]
                out += [""]
            body = op.get("requestBody")
            if body:
                ref = _type(body["content"]["application/json"]["schema"])
                out += [f"Body: `{ref}`", "", *_fields(ref, schemas), ""]
            for status, answer in op["responses"].items():
                if status == "default":
                    continue
                content = answer.get("content", {})
                kind = next(iter(content), None)
                shape = _type(content[kind]["schema"]) if kind else "no content"
                out += [f"Answer {status}: `{shape}`" + (f" ({kind})" if kind else ""), ""]
                if kind == "application/json":
                    out += [*_fields(shape, schemas), ""]
            by_tag.setdefault(op["tags"][0], []).append("\n".join(out))
    parts = []
    for tag in sorted(by_tag):
        parts += [f"## {tag.capitalize()}", "", *by_tag[tag]]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, render(_document()))
    return markdown
