"""Acceptance for hub-managed containers, against the real Docker engine."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import docker
import pytest
from websockets.asyncio.client import connect

from tests.containers.conftest import IMAGE, HubFactory
from tests.support import Api, Hub, assert_error, wait_for


async def terminal(hub: Hub, api: Api, target: str, script: bytes) -> tuple[bytes, list[Any]]:
    """Run keystrokes in a new session; all output and every control message."""
    assert api.token
    url = f"ws://127.0.0.1:{hub.port}/ws/terminal/{target}?token={api.token}"
    out, texts = b"", []
    async with connect(url, compression=None) as ws:
        await ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        await ws.send(script)
        async with asyncio.timeout(20):
            async for msg in ws:
                if isinstance(msg, bytes):
                    out += msg
                else:
                    texts.append(json.loads(msg))
    return out, texts


async def docker_id_of(api: Api, cid: str) -> str:
    """A container's engine id, from the inside: its hostname is the short id."""
    answer = await api.ok("POST", f"/api/containers/{cid}/exec", {"cmd": "hostname"})
    return str(answer["stdout"].strip())


async def test_lifecycle_exec_terminal_delete(
    chub: Hub, alice: Api, engine: docker.DockerClient
) -> None:
    created = await alice.ok("POST", "/api/containers", {"name": "dev"}, 201)
    cid = created["id"]
    assert cid.startswith("ctr_") and created["status"] == "running"
    assert created["image"] == IMAGE and created["name"] == "dev"
    assert created["limits"]["memory_mb"] == 128 and created["expires_at"].endswith("Z")
    assert [c["id"] for c in (await alice.ok("GET", "/api/containers"))["containers"]] == [cid]
    assert (await alice.ok("GET", f"/api/containers/{cid}"))["id"] == cid

    hi = await alice.ok("POST", f"/api/containers/{cid}/exec", {"cmd": ["echo", "hi"]})
    assert (hi["stdout"], hi["stderr"], hi["exit_code"]) == ("hi\n", "", 0)
    err = await alice.ok("POST", f"/api/containers/{cid}/exec", {"cmd": "echo e >&2; exit 7"})
    assert (err["stdout"], err["stderr"], err["exit_code"]) == ("", "e\n", 7)
    fed = await alice.ok(
        "POST",
        f"/api/containers/{cid}/exec",
        {
            "cmd": "cat; echo $GREETING; pwd",
            "stdin": "in\n",
            "env": {"GREETING": "yo"},
            "workdir": "/tmp",
        },
    )
    assert fed["stdout"] == "in\nyo\n/tmp\n"

    out, texts = await terminal(chub, alice, cid, b"echo $((6*7)); stty size\nexit 3\n")
    assert b"42\r\n" in out and b"40 120" in out
    assert texts[0]["type"] == "session" and texts[-1] == {"type": "exit", "code": 3}

    short = await docker_id_of(alice, cid)
    assert engine.containers.get(short).status == "running"
    status, _ = await alice.call("DELETE", f"/api/containers/{cid}")
    assert status == 204
    status, body = await alice.call("GET", f"/api/containers/{cid}")
    assert_error(status, body, 404)
    with pytest.raises(docker.errors.NotFound):  # gone from `docker ps -a`
        engine.containers.get(short)


async def test_sandbox_settings(chub: Hub, alice: Api, engine: docker.DockerClient) -> None:
    cid = (await alice.ok("POST", "/api/containers", {"cpus": 0.5, "memory_mb": 64}, 201))["id"]
    container = engine.containers.get(await docker_id_of(alice, cid))
    assert container.labels["rexec.managed"] == "1"
    host = container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]  # the image's user is not root
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["PidsLimit"] == 256 and host["MemorySwap"] == 64 << 20
    assert host["CpuQuota"] == 50_000 and host["CpuPeriod"] == 100_000
    assert host["NetworkMode"] == "none" and host["Init"] is True and not host["Privileged"]
    who = await alice.ok("POST", f"/api/containers/{cid}/exec", {"cmd": "id -u; ls /root"})
    assert who["stdout"].startswith("1000\n")


async def test_fork_bomb_memory_hog_and_timeout(chub: Hub, alice: Api) -> None:
    cid = (await alice.ok("POST", "/api/containers", {"memory_mb": 64}, 201))["id"]
    bomb = await alice.ok(
        "POST",
        f"/api/containers/{cid}/exec",
        {"cmd": "bomb() { bomb | bomb & }; bomb; sleep 3; echo survived", "timeout": 8},
    )
    assert bomb["duration_ms"] < 15_000
    pids = await alice.ok(
        "POST", f"/api/containers/{cid}/exec", {"cmd": "cat /sys/fs/cgroup/pids/pids.max"}
    )
    assert pids["stdout"].strip() == "256"
    assert (await alice.ok("GET", "/healthz"))["status"] == "ok"  # the hub kept serving
    hog = await alice.ok(
        "POST",
        f"/api/containers/{cid}/exec",
        {"cmd": "x=a; while :; do x=$x$x; done", "timeout": 60},
    )
    assert hog["exit_code"] == 137 and hog["oom_killed"] is True and hog["timed_out"] is False
    slow = await alice.ok(
        "POST", f"/api/containers/{cid}/exec", {"cmd": "echo started; sleep 30", "timeout": 1}
    )
    assert slow["timed_out"] is True and slow["stdout"] == "started\n"
    assert slow["duration_ms"] < 25_000  # killed, not waited out (30 s)
    # Still usable afterwards.
    after = await alice.ok("POST", f"/api/containers/{cid}/exec", {"cmd": "echo ok"})
    assert after["stdout"] == "ok\n"


async def test_other_users_get_404_everywhere(chub: Hub, alice: Api) -> None:
    cid = (await alice.ok("POST", "/api/containers", {}, 201))["id"]
    bob = await Api(alice.http, alice.base).sign_up("bob@example.com")
    for method, path, body in (
        ("GET", f"/api/containers/{cid}", None),
        ("DELETE", f"/api/containers/{cid}", None),
        ("POST", f"/api/containers/{cid}/exec", {"cmd": "id"}),
        ("POST", f"/api/containers/{cid}/exec", {"bad": "body"}),
    ):
        status, answer = await bob.call(method, path, body)
        assert_error(status, answer, 404)
    assert (await bob.ok("GET", "/api/containers"))["containers"] == []
    assert bob.token
    with pytest.raises(Exception, match="404"):
        async with connect(f"ws://127.0.0.1:{chub.port}/ws/terminal/{cid}?token={bob.token}"):
            pass
    assert (await alice.ok("GET", f"/api/containers/{cid}"))["status"] == "running"


async def test_a_name_works_wherever_an_id_does(chub: Hub, alice: Api) -> None:
    """Exec, the terminal socket and the policy take the container's name (hub/targets.py);
    another user's name, a missing one and a shared one answer in API.md's shape."""
    cid = (await alice.ok("POST", "/api/containers", {"name": "named"}, 201))["id"]
    ran = await alice.ok("POST", "/api/containers/named/exec", {"cmd": "echo n"})
    assert (ran["stdout"], ran["exit_code"]) == ("n\n", 0)
    out, texts = await terminal(chub, alice, "named", b"echo $((6*7))\nexit 0\n")
    assert b"42\r\n" in out and texts[-1] == {"type": "exit", "code": 0}
    policy = await alice.ok("GET", "/api/containers/named/policy")
    assert policy == await alice.ok("GET", f"/api/containers/{cid}/policy")

    status, body = await alice.call("POST", "/api/containers/nothere/exec", {"cmd": "id"})
    assert_error(status, body, 404, "container_not_found")
    status, body = await alice.call("POST", "/api/agents/named/exec", {"cmd": "id"})
    assert_error(status, body, 404, "agent_not_found")  # a container's name is no agent
    bob = await Api(alice.http, alice.base).sign_up("bob@example.com")
    status, body = await bob.call("POST", "/api/containers/named/exec", {"cmd": "id"})
    assert_error(status, body, 404, "container_not_found")

    await alice.ok("POST", "/api/containers", {"name": "named"}, 201)
    status, body = await alice.call("POST", "/api/containers/named/exec", {"cmd": "id"})
    assert_error(status, body, 409, "ambiguous_target")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image": "ubuntu:latest"}, "image"),
        ({"cpus": -1}, "cpus"),
        ({"cpus": 64}, "cpus"),
        ({"memory_mb": 0}, "memory_mb"),
        ({"memory_mb": 10_000_000}, "memory_mb"),
        ({"ttl_seconds": 10**9}, "ttl_seconds"),
        ({"privileged": True}, "privileged"),
        ({"env": {"BAD NAME": "x"}}, "env"),
        ({"name": "../etc"}, "name"),
    ],
)
async def test_bad_create_requests_name_the_field(
    alice: Api, body: dict[str, Any], field: str
) -> None:
    status, answer = await alice.call("POST", "/api/containers", body)
    assert_error(status, answer, 400, "invalid_request")
    assert answer["error"]["details"]["field"] == field


async def test_bad_exec_requests(alice: Api) -> None:
    cid = (await alice.ok("POST", "/api/containers", {}, 201))["id"]
    for body, field in (
        ({"cmd": ""}, "cmd"),
        ({"cmd": []}, "cmd"),
        ({"cmd": "x", "timeout": -1}, "timeout"),
    ):
        status, answer = await alice.call("POST", f"/api/containers/{cid}/exec", body)
        assert_error(status, answer, 400, "invalid_request")
        assert answer["error"]["details"]["field"] == field


async def test_running_container_cap(make_hub: HubFactory, http: Any) -> None:
    hub = await make_hub(containers_per_user="2")
    api = await Api(http, hub.url).sign_up("capped@example.com")
    for _ in range(2):
        await api.ok("POST", "/api/containers", {}, 201)
    status, body = await api.call("POST", "/api/containers", {})
    assert_error(status, body, 402, "plan_limit_reached")
    assert body["error"]["details"]["limit"] == "containers"


async def test_read_only_root_with_writable_home(make_hub: HubFactory, http: Any) -> None:
    hub = await make_hub(container_read_only="true", warm_pool_size="0")
    api = await Api(http, hub.url).sign_up("ro@example.com")
    cid = (await api.ok("POST", "/api/containers", {}, 201))["id"]
    result = await api.ok(
        "POST",
        f"/api/containers/{cid}/exec",
        {"cmd": "touch /etc/x 2>/dev/null && echo root-writable; touch ~/ok && echo home-ok"},
    )
    assert result["stdout"] == "home-ok\n"


async def test_lifetime_ends_sessions_with_a_message(make_hub: HubFactory, http: Any) -> None:
    hub = await make_hub(container_ttl_default="4", reaper_interval="0.5", warm_pool_size="0")
    api = await Api(http, hub.url).sign_up("ttl@example.com")
    cid = (await api.ok("POST", "/api/containers", {}, 201))["id"]
    _, texts = await terminal(hub, api, cid, b"echo waiting\n")
    codes = [t.get("code") for t in texts if t["type"] == "error"]
    assert "container_expired" in codes and texts[-1]["type"] == "exit"

    async def gone() -> bool:
        return (await api.call("GET", f"/api/containers/{cid}"))[0] == 404

    await wait_for(gone, 10, what="expired container's record closed")


async def test_idle_containers_are_reaped(make_hub: HubFactory, http: Any) -> None:
    hub = await make_hub(container_idle_timeout="2", reaper_interval="0.5", warm_pool_size="0")
    api = await Api(http, hub.url).sign_up("idle@example.com")
    cid = (await api.ok("POST", "/api/containers", {}, 201))["id"]
    # Running work counts as activity: a 4 s command outlives the 2 s idle timeout.
    busy = await api.ok("POST", f"/api/containers/{cid}/exec", {"cmd": "sleep 4; echo done"})
    assert busy["stdout"] == "done\n"

    async def gone() -> bool:
        return (await api.call("GET", f"/api/containers/{cid}"))[0] == 404

    await wait_for(gone, 10, what="idle container reaped")


async def test_hub_killed_then_reconciled(
    make_hub: HubFactory, http: Any, engine: docker.DockerClient, tmp_path: Any
) -> None:
    hub = await make_hub(tmp_path / "h")
    api = await Api(http, hub.url).sign_up("rec@example.com")
    keep = (await api.ok("POST", "/api/containers", {}, 201))["id"]
    vanish = (await api.ok("POST", "/api/containers", {}, 201))["id"]
    keep_short, vanish_short = await docker_id_of(api, keep), await docker_id_of(api, vanish)
    label = f"rexec.instance={(hub.data_dir / 'instance_id').read_text().strip()}"

    def spares() -> set[str]:
        found = engine.containers.list(all=True, filters={"label": label})
        return {c.id for c in found if c.id[:12] not in (keep_short, vanish_short)}

    await wait_for(spares, 10, what="the warm pool refilled")
    hub.kill()  # SIGKILL: the pool's spare is now an orphan
    orphans = spares()
    engine.containers.get(vanish_short).remove(force=True)  # behind the hub's back
    restarted = await make_hub(tmp_path / "h", port=hub.port)
    api2 = Api(http, restarted.url, api.token)
    listed = [c["id"] for c in (await api2.ok("GET", "/api/containers"))["containers"]]
    assert listed == [keep]  # the vanished one's record is closed
    left = {c.id for c in engine.containers.list(all=True, filters={"label": label})}
    assert orphans and not orphans & left  # the dead hub's pool spare was removed
    result = await api2.ok("POST", f"/api/containers/{keep}/exec", {"cmd": "echo alive"})
    assert result["stdout"] == "alive\n"


async def test_a_network_docker_cannot_create_is_a_clear_error() -> None:
    """The engine refusing a network (address pools used up; here a blank name, which
    Docker 20.10 answers with a 500) is an error that says so, not a container start
    failing later with "network not found"."""
    from hub.containers.engine import Engine, EngineError

    engine = Engine(None)
    try:
        with pytest.raises(EngineError) as refused:
            await engine.ensure_network(" ", {"rexec.managed": "1"})
        assert refused.value.code == "docker_network_failed"
        assert "could not create the network" in refused.value.message
    finally:
        await engine.close()
