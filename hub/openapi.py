"""`GET /api/openapi.json`: the OpenAPI 3.1 document, generated from the code.

Nothing here is written by hand per endpoint, so the document cannot drift: the paths and
methods come from the aiohttp route table, each request body from the pydantic model its
handler passes to `parse_body`, the query parameters from the handler's reads of
`request.query`, the success status from its `json_ok(..., N)` / `web.Response(status=N)`,
and the answers from the typed models in hub/api/responses.py. Handlers are read, not
rewritten: a handler's source is parsed once (`ast`) when the document is first built.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from aiohttp import web
from pydantic import BaseModel

from common import __version__
from hub.api.responses import ALSO, RESPONSES, ErrorAnswer

# What the public document covers: the JSON API and the operations probes. The agents'
# own socket, the MCP endpoint and the web app's pages are other protocols.
PUBLIC = re.compile(r"^/(api/|healthz$|readyz$)")
HIDDEN = {"GET /api/agents/{id}/ws"}
NO_AUTH = {
    "POST /api/register",
    "POST /api/login",
    "POST /api/refresh",
    "POST /api/agents/register",
    "GET /api/billing/plans",
    "POST /api/billing/webhook",
    "GET /api/openapi.json",
    "GET /healthz",
    "GET /readyz",
}
# Helpers are read for the parameters they take on a handler's behalf, except
# authentication's (`?token=`, `?share=` on sockets), which is no parameter of every call.
AUTH_HELPERS = "hub.api.http"
PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass
class Reading:
    """What a handler's source says about its request and answer."""

    body: type[BaseModel] | None = None
    query: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    media: str | None = None  # a Content-Type the handler sets (else JSON)


def _names(fn: Callable[..., Any]) -> dict[str, Any]:
    """The names a handler sees: its closure's, then its module's."""
    closure = inspect.getclosurevars(fn)
    return {**closure.globals, **fn.__globals__, **closure.nonlocals}


def read_handler(fn: Callable[..., Any], depth: int = 2) -> Reading:
    """What `fn`'s source reads and answers; the helpers of this project it calls are
    read too (`depth` levels), for the query parameters and bodies they parse for it."""
    fn = inspect.unwrap(fn)
    reading = Reading()
    try:  # a handler that is no plain function (a class, a partial) is documented bare
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        names = _names(fn)
    except (OSError, TypeError, SyntaxError):
        return reading
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            if (
                isinstance(node, ast.Subscript)
                and _is_query(node.value)
                and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)
            ):
                reading.query.append(node.slice.value)
            elif (
                isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Constant)
                and isinstance(node.left.value, str)
                and any(_is_query(c) for c in node.comparators)
            ):
                reading.query.append(node.left.value)  # `"name" in request.query`
            continue
        callee = node.func
        name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", None)
        statuses = [kw.value for kw in node.keywords if kw.arg == "status"]
        if name == "parse_body" and len(node.args) == 2 and isinstance(node.args[1], ast.Name):
            model = names.get(node.args[1].id)
            if isinstance(model, type) and issubclass(model, BaseModel):
                reading.body = model
        elif name == "json_ok":
            for value in node.args[1:2] + statuses:
                reading.statuses += _ints(value)
        elif name in ("Response", "json_response", "FileResponse"):
            for value in statuses:
                reading.statuses += _ints(value)
            reading.media = reading.media or _content_type(node)
        elif (
            name == "get"
            and isinstance(callee, ast.Attribute)
            and _is_query(callee.value)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            reading.query.append(node.args[0].value)
        elif depth > 0 and isinstance(callee, ast.Name):
            helper = names.get(callee.id)
            if _own_helper(helper):
                inner = read_handler(helper, depth - 1)
                reading.query += inner.query
                reading.body = reading.body or inner.body
    reading.query = sorted(set(reading.query) - {"token"})
    return reading


def _content_type(call: ast.Call) -> str | None:
    """`content_type="x"` or `headers={"Content-Type": "x"}` in a response's making."""
    for kw in call.keywords:
        if kw.arg == "content_type" and isinstance(kw.value, ast.Constant):
            return str(kw.value.value)
        if kw.arg == "headers" and isinstance(kw.value, ast.Dict):
            for k, v in zip(kw.value.keys, kw.value.values, strict=True):
                named = isinstance(k, ast.Constant) and str(k.value).lower() == "content-type"
                if named and isinstance(v, ast.Constant):
                    return str(v.value)
    return None


def _own_helper(fn: Any) -> TypeGuard[Callable[..., Any]]:
    if not inspect.isfunction(fn):
        return False
    return fn.__module__.startswith("hub.") and fn.__module__ != AUTH_HELPERS


def _is_query(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "query"


def _ints(node: ast.expr) -> list[int]:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return [node.value]
    return []


class _Schemas:
    """Component schemas, collected from the pydantic models as they are met."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}
        self.named: dict[type[BaseModel], str] = {}

    def _name(self, model: type[BaseModel]) -> str:
        """The model's class name, or with its module's in front when two share it
        (`RegisterBody` of accounts and of agents)."""
        if model in self.named:
            return self.named[model]
        name = model.__name__
        if name in self.named.values():
            name = model.__module__.rsplit(".", 1)[-1].title() + name
        self.named[model] = name
        return name

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        name = self._name(model)
        if name not in self.components:
            schema = model.model_json_schema(
                ref_template="#/components/schemas/{model}",
                mode="validation" if mode == "input" else "serialization",
            )
            for sub_name, sub in schema.pop("$defs", {}).items():
                self.components.setdefault(sub_name, sub)
            self.components[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}


def operations(app: web.Application) -> Iterable[tuple[str, str, Callable[..., Any]]]:
    """(method, path, handler) of every public route, in the route table's order."""
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "OPTIONS", "*"):
            continue
        path = PARAM.sub(r"{\1}", resource.canonical)
        if PUBLIC.match(path) and f"{route.method} {path}" not in HIDDEN:
            yield route.method, path, route.handler


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build(app: web.Application) -> dict[str, Any]:
    schemas = _Schemas()
    error = schemas.ref(ErrorAnswer, "output")
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in operations(app):
        key = f"{method} {path}"
        reading = read_handler(handler)
        ok = min((s for s in reading.statuses if 200 <= s < 300), default=200)
        answers: dict[str, Any] = {}
        if ok == 204:
            answers["204"] = {"description": "Done; no content."}
        elif reading.media is not None and reading.media != "application/json":
            answers[str(ok)] = {
                "description": "Success.",
                "content": {reading.media: {"schema": {"type": "string"}}},
            }
        else:
            model = RESPONSES.get(key)
            schema = schemas.ref(model, "output") if model else {"type": "object"}
            answers[str(ok)] = _json(schema, "Success.")
        for status, extra in ALSO.get(key, {}).items():
            answers[str(status)] = _json(schemas.ref(extra, "output"), "Also.")
        answers["default"] = _json(error, "An error, in API.md's shape.")
        op: dict[str, Any] = {
            "operationId": f"{method.lower()}_{handler.__module__.rsplit('.', 1)[-1]}_"
            f"{handler.__name__}",
            "summary": (inspect.getdoc(handler) or "").split("\n\n")[0] or None,
            "tags": [path.split("/")[2] if path.startswith("/api/") else "operations"],
            "responses": answers,
        }
        if op["summary"] is None:
            del op["summary"]
        parameters = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in PARAM.findall(path)
        ]
        parameters += [
            {"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
            for q in reading.query
        ]
        if parameters:
            op["parameters"] = parameters
        if reading.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schemas.ref(reading.body, "input")}},
            }
        if key in NO_AUTH:
            op["security"] = []
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Rexec",
            "version": __version__,
            "description": "Terminals, containers and agents as a service (API.md).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An access JWT from /api/login or an API token (rx_...).",
                }
            },
        },
    }


_built: list[tuple[web.Application, dict[str, Any]]] = []  # the last app's, at most one


def document(app: web.Application) -> dict[str, Any]:
    """The app's document, built on first use (its route table is frozen by then)."""
    if not _built or _built[0][0] is not app:
        _built[:] = [(app, build(app))]
    return _built[0][1]
