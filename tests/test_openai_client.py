"""The shared OpenAI-compatible client against a real local HTTP server."""

import asyncio

import pytest
from PIL import Image

from common.openai_client import ChatClient, ChatConfig, ChatError, user_message
from tests.support.fake_openai import Reply, fake_openai_server


def _cfg(server, **kw):
    return ChatConfig(base_url=server.base_url, model="m", backoff_s=0.01, **kw)


def _run(coro):
    return asyncio.run(coro)


async def _complete(cfg, n=1, **params):
    async with ChatClient(cfg) as c:
        results = await asyncio.gather(
            *[c.complete([user_message("hi")], **params) for _ in range(n)], return_exceptions=True
        )
        return results, c


def test_retries_429_and_500_then_succeeds_and_counts_usage():
    script = {1: Reply("slow down", status=429, headers={"Retry-After": "0"}), 2: Reply("boom", status=500)}
    with fake_openai_server(lambda req, n: script.get(n, Reply("fine"))) as server:
        (res,), client = _run(_complete(_cfg(server)))
    assert res.text == "fine" and res.attempts == 3
    assert client.events["retries"] == 2 and client.usage["total_tokens"] == 15


def test_timeout_and_malformed_reply_raise_clear_errors():
    with fake_openai_server(lambda req, n: Reply("late", delay_s=1.0)) as server:
        (err,), _ = _run(_complete(_cfg(server, timeout_s=0.2, max_retries=1)))
    assert isinstance(err, ChatError) and err.kind == "timeout" and err.attempts == 2
    with fake_openai_server(lambda req, n: Reply(raw="{not json")) as server:
        (err,), client = _run(_complete(_cfg(server)))
    assert isinstance(err, ChatError) and err.kind == "malformed"
    assert client.events["failed_malformed"] == 1


def test_unreachable_server_and_stalled_stream_raise_transport_and_timeout_errors():
    import socket

    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = ChatConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", backoff_s=0.01, max_retries=1)
    (err,), client = _run(_complete(cfg))
    assert isinstance(err, ChatError) and err.kind == "transport" and err.attempts == 2
    assert client.events["failed_transport"] == 1

    async def stream(cfg):
        async with ChatClient(cfg) as c:
            return [piece async for piece in c.stream([user_message("hi")])]

    with (
        fake_openai_server(lambda req, n: Reply("one two three", chunk_delay_s=1.0)) as server,
        pytest.raises(ChatError, match="stalled") as info,
    ):
        _run(stream(_cfg(server, timeout_s=0.3)))
    assert info.value.kind == "timeout"


def test_client_error_is_not_retried_and_key_is_sent_from_env(monkeypatch):
    monkeypatch.setenv("SIF_TEST_KEY", "sk-secret")
    with fake_openai_server(lambda req, n: Reply("bad request", status=400)) as server:
        (err,), _ = _run(_complete(_cfg(server, api_key_env="SIF_TEST_KEY")))
        assert server.requests[0]["_headers"]["Authorization"] == "Bearer sk-secret"
    assert err.status == 400 and err.attempts == 1


def test_images_travel_as_data_urls_and_streaming_yields_deltas():
    with fake_openai_server(lambda req, n: Reply("one two three")) as server:

        async def go():
            async with ChatClient(_cfg(server)) as c:
                msg = user_message("look", [Image.new("RGB", (4, 3), "red")])
                return [d async for d in c.stream([msg])]

        deltas = _run(go())
        part = server.requests[0]["messages"][0]["content"][0]
    assert "".join(deltas) == "one two three" and len(deltas) == 3
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


def test_concurrency_is_bounded():
    with fake_openai_server(lambda req, n: Reply("x", delay_s=0.2)) as server:
        import time

        t = time.monotonic()
        results, _ = _run(_complete(_cfg(server, concurrency=4), n=8))
        elapsed = time.monotonic() - t
    assert all(r.text == "x" for r in results)
    assert 0.35 < elapsed < 1.2  # two waves of four, not eight at once nor one by one


@pytest.mark.parametrize("rate", [20.0])
def test_rate_limit_spaces_requests(rate):
    with fake_openai_server(lambda req, n: Reply("x")) as server:
        import time

        t = time.monotonic()
        _run(_complete(_cfg(server, rate_limit_per_s=rate), n=5))
        assert time.monotonic() - t >= 4 / rate * 0.9
