"""ConfigWatcher and get_config against the real server (its configuration in a temporary directory)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from maxine_server import MaxineServer

from maxine import BackoffOptions, Client, ConfigValue, ConfigWatcher, config_stub, get_config
from maxine.gen.maxine.config.v1 import config_pb2


async def put(client: Client, service: str, key: str, value: bytes) -> config_pb2.ConfigEntry:
    res = await config_stub(client).Put(config_pb2.PutRequest(service=service, key=key, value=value, content_type="application/json"), timeout=5)
    return res.entry


async def until(cond: object, what: str, timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_config_watcher_end_to_end(tmp_path: Path) -> None:
    """JSON decoded into a dict, each change in order, the last good value kept through an invalid version and a server
    restart (a change made after it arrives by the resume), then a cache file that gives the value while the server is down."""
    env = {"MAXINE_DATA_DIR": str(tmp_path / "data")}
    srv = MaxineServer(env).start()
    cache = tmp_path / "cache" / "limits.json"
    client = Client(srv.target)
    try:
        await put(client, "pay", "limits.json", json.dumps({"max": 1}).encode())
        got = await get_config(client, "pay", "limits.json")
        assert (got.value, got.version, got.source) == ({"max": 1}, 1, "registry")

        seen: list[ConfigValue[dict[str, int]]] = []
        invalid: list[int] = []
        w: ConfigWatcher[dict[str, int]] = ConfigWatcher(
            client,
            "pay",
            "limits.json",
            cache_file=cache,
            backoff=BackoffOptions(base=0.02, max=0.1),
            on_change=seen.append,
            on_invalid=lambda _e, v: invalid.append(v),
        )
        async with w:
            assert w.value == {"max": 1}
            await put(client, "pay", "limits.json", json.dumps({"max": 2}).encode())
            await put(client, "pay", "other", b'"ignored"')
            await put(client, "pay", "limits.json", b"{not json")
            await until(lambda: invalid == [3], "the invalid version")
            assert w.value == {"max": 2}

            port = srv.port
            assert srv.stop() == 0
            assert w.value == {"max": 2}
            srv = MaxineServer({**env, "MAXINE_PORT": str(port)}).start()
            await put(client, "pay", "limits.json", json.dumps({"max": 4}).encode())
            await until(lambda: w.value == {"max": 4}, "the change after the restart")
            assert [(v.value["max"], v.version) for v in seen] == [(1, 1), (2, 2), (4, 4)]
        assert json.loads(cache.read_text())["version"] == "4"
        assert srv.stop() == 0

        # the server is down: a new watcher starts from the cache file
        down: ConfigWatcher[dict[str, int]] = ConfigWatcher(client, "pay", "limits.json", cache_file=cache, backoff=BackoffOptions(base=0.02, max=0.1))
        await down.ready(timeout=1)
        assert down.current is not None
        assert (down.current.value, down.current.version, down.current.source) == ({"max": 4}, 4, "cache")
        await down.close()
    finally:
        await client.close()
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()
