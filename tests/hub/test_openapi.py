"""`GET /api/openapi.json` (hub/openapi.py): generated from the route table and the models,
complete, and true to what a real hub answers (checked here and by schemathesis)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import Field

from hub.api.http import Body, json_ok, parse_body
from hub.openapi import build
from tests.containers.conftest import HubFactory, engine, make_hub
from tests.support import BIN, Api

__all__ = ["engine", "make_hub"]
PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def public_routes(app: web.Application) -> set[str]:
    """What the document must hold, read from the route table on its own terms."""
    found = set()
    for route in app.router.routes():
        if route.resource is None or route.method in ("HEAD", "*"):
            continue
        path = PARAM.sub(r"{\1}", route.resource.canonical)
        if (path.startswith("/api/") and not path.endswith("/ws")) or path in (
            "/healthz",
            "/readyz",
        ):
            found.add(f"{route.method} {path}")
    return found


def documented(doc: dict[str, Any]) -> set[str]:
    return {f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops}


def validator(doc: dict[str, Any], method: str, path: str, status: int) -> Any:
    """A JSON Schema validator for one operation's documented answer."""
    answers = doc["paths"][path][method.lower()]["responses"]
    answer = answers.get(str(status)) or answers["default"]
    schema = answer["content"]["application/json"]["schema"]
    whole = {**schema, "components": doc["components"]}
    return jsonschema.Draft202012Validator(whole)


async def test_every_route_is_documented_with_its_models(hub_server: TestServer, api: Api) -> None:
    doc = await api.ok("GET", "/api/openapi.json")
    assert doc["openapi"].startswith("3.1")
    app = hub_server.app
    missing = public_routes(app) - documented(doc)
    assert not missing, f"routes missing from the document: {sorted(missing)}"
    assert {"POST /api/containers/{id}/exec", "GET /api/openapi.json"} <= documented(doc)
    exec_op = doc["paths"]["/api/containers/{id}/exec"]["post"]
    body = exec_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/ExecRequest")
    assert "cmd" in doc["components"]["schemas"]["ExecRequest"]["properties"]
    assert doc["paths"]["/api/register"]["post"]["responses"].keys() == {"201", "default"}
    assert "status" in [p["name"] for p in doc["paths"]["/api/approvals"]["get"]["parameters"]]
    jsonschema.Draft202012Validator.check_schema({"components": doc["components"]})


async def test_a_new_route_appears_with_its_body_status_and_query() -> None:
    """Generated, not written: a route the document was never told about shows up."""

    class Thing(Body):
        size: int = Field(ge=1)

    routes = web.RouteTableDef()

    @routes.post("/api/things/{thing}")
    async def make_thing(request: web.Request) -> web.Response:
        """Make a thing."""
        body = await parse_body(request, Thing)
        return json_ok({"size": body.size, "color": request.query.get("color")}, 201)

    app = web.Application()
    app.add_routes(routes)
    op = build(app)["paths"]["/api/things/{thing}"]["post"]
    assert op["summary"] == "Make a thing."
    assert set(op["responses"]) == {"201", "default"}
    assert [(p["name"], p["in"]) for p in op["parameters"]] == [
        ("thing", "path"),
        ("color", "query"),
    ]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/Thing"


async def test_real_answers_match_their_schemas(hub_server: TestServer, api: Api) -> None:
    doc = await api.ok("GET", "/api/openapi.json")
    status, registered = await api.call(
        "POST", "/api/register", {"email": "oa@example.com", "password": "correct horse 1"}
    )
    validator(doc, "POST", "/api/register", status).validate(registered)
    status, pair = await api.call(
        "POST", "/api/login", {"email": "oa@example.com", "password": "correct horse 1"}
    )
    validator(doc, "POST", "/api/login", status).validate(pair)
    me = Api(api.http, api.base, pair["access_token"])
    for path in ("/api/user", "/api/containers", "/api/agents", "/api/sessions"):
        status, answer = await me.call("GET", path)
        assert status == 200, answer
        validator(doc, "GET", path, status).validate(answer)
    for path in ("/api/billing/plans", "/api/approvals", "/api/images", "/healthz"):
        status, answer = await me.call("GET", path)
        validator(doc, "GET", path, status).validate(answer)
    status, wrong = await me.call("POST", "/api/containers/ctr_nope/exec", {"cmd": "id"})
    assert status == 404
    validator(doc, "POST", "/api/containers/{id}/exec", status).validate(wrong)
    # The check has teeth: an answer of another shape fails it.
    bad = {"exit_code": "three", "stdout": "", "stderr": "", "duration_ms": 1, "timed_out": False}
    errors = list(validator(doc, "POST", "/api/containers/{id}/exec", 200).iter_errors(bad))
    assert errors


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    make_hub: HubFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """schemathesis against a real hub (Docker containers and all), signed in with a real
    account's API token: every answer documented, none a 5xx. Calls that end the token's
    own access are left out, so the run keeps testing as a signed-in user."""
    hub = await make_hub()
    alice = await Api(http, hub.url).sign_up("fuzz@example.com")
    made = await alice.ok("POST", "/api/user/tokens", {"name": "fuzz", "scopes": ["all"]}, 201)
    token = made["token"]
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "st"),
        "run",
        f"{hub.url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance",
        "--phases",
        "examples,fuzzing",
        "--max-examples",
        "8",
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--exclude-path",
        "/api/logout",
        "--exclude-path-regex",
        r"^/api/user/tokens/\{id\}$",
        "--seed",
        "23",
        "--generation-database",
        "none",
        "--no-shrink",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    text = out.decode()
    assert proc.returncode == 0, text[-6000:]
    tested = re.search(r"(\d+) (?:passed|generated)", text)
    assert tested is not None and int(tested.group(1)) > 0, text[-3000:]
    assert (await alice.ok("GET", "/api/user"))["email"] == "fuzz@example.com"
