"""A small async client for OpenAI-compatible chat completions (teacher, judge, inference).

One client for every part that talks to a VLM server: bounded concurrency, an optional rate
limit, retries with exponential backoff and jitter on 429/5xx/timeouts (honouring
Retry-After), token usage accounting, and images sent as base64 data URLs. The API key is read
from the environment and never stored in configs, the DB or logs: errors are redacted here
(common/redact.py), so a server that echoes the key, or credentials in the base URL, never
reach what is kept.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from PIL import Image

from common.redact import redact, register_secret, register_url_secrets, scrub
from sif.errors import ConfigError, SifError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class ChatConfig:
    base_url: str = field(default_factory=lambda: os.environ.get("SIF_OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"))
    model: str = field(default_factory=lambda: os.environ.get("SIF_OPENAI_MODEL", "default"))
    api_key_env: str = "OPENAI_API_KEY"  # the name of the variable, never the key itself
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    concurrency: int = 8
    rate_limit_per_s: float | None = None

    @classmethod
    def resolve(cls, base_url: str | None = None, model: str | None = None, **settings: Any) -> ChatConfig:
        """The one place client settings are resolved: `base_url` and `model` when given, else
        $SIF_OPENAI_BASE_URL / $SIF_OPENAI_MODEL (then the defaults above)."""
        config = cls(**settings)
        if base_url:
            config.base_url = base_url
        if model:
            config.model = model
        return config

    @classmethod
    def of(cls, settings: Any) -> ChatConfig:
        """`resolve` for a command's settings that name the client's fields as this class does
        (`base_url`, `model`, `timeout_s`, …); a field they lack keeps its default."""
        given = {f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)}
        return cls.resolve(given.pop("base_url", None), given.pop("model", None), **given)

    @property
    def api_key(self) -> str | None:
        key = os.environ.get(self.api_key_env) or None
        register_secret(key)
        return key


class ChatError(SifError, RuntimeError):
    """A request that failed for good; `kind` is timeout, http, transport or malformed. The
    message is redacted: it quotes the server and names the URL, and is stored with the sample."""

    def __init__(self, kind: str, message: str, *, status: int | None = None, attempts: int = 1):
        super().__init__(
            redact(f"{kind}: {message}" + (f" (HTTP {status})" if status else "") + f" after {attempts} attempt(s)")
        )
        self.kind, self.status, self.attempts = kind, status, attempts


@dataclass
class ChatResult:
    text: str
    usage: dict
    attempts: int
    latency_s: float


def image_data_url(image: Image.Image | str | Path | bytes, fmt: str = "PNG", quality: int | None = None) -> str:
    """A base64 data URL for a PIL image (encoded as `fmt`, JPEG at `quality`), an image file or
    encoded image bytes; a data URL is returned as it is."""
    if isinstance(image, str) and image.startswith("data:"):
        return image
    if isinstance(image, (str, Path)):
        data = Path(image).read_bytes()
        mime = "image/jpeg" if str(image).lower().endswith((".jpg", ".jpeg")) else "image/png"
    elif isinstance(image, bytes):
        data, mime = image, "image/png"
    else:
        buf = io.BytesIO()
        img = image if image.mode in ("RGB", "L", "RGBA") else image.convert("RGB")
        img.save(buf, format=fmt, **({} if quality is None else {"quality": quality}))
        data, mime = buf.getvalue(), f"image/{fmt.lower()}"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def user_message(text: str, images=(), fmt: str = "PNG") -> dict:
    """A user message with images first (as data URLs, PIL images encoded as `fmt`), then the text."""
    parts = [{"type": "image_url", "image_url": {"url": image_data_url(im, fmt)}} for im in images]
    parts.append({"type": "text", "text": text})
    return {"role": "user", "content": parts}


def chat_url(base_url: str) -> str:
    """The chat-completions endpoint under `base_url`, its query (`?api-version=…`) kept at the end.

    >>> chat_url("https://host/openai/v1/?api-version=2024-10-21")
    'https://host/openai/v1/chat/completions?api-version=2024-10-21'
    """
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/chat/completions"))


class ChatClient:
    """Async chat-completions client; use as `async with ChatClient(cfg) as c: await c.complete(msgs)`.

    On aiohttp: at 32 concurrent teacher requests with step images it spends about a quarter of
    httpx's CPU per request, and the client's CPU is what bounds `sif generate` on a small machine."""

    def __init__(self, config: ChatConfig):
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._rate_lock = asyncio.Lock()
        self._next_start = 0.0
        self.usage: Counter[str] = Counter()  # prompt_tokens, completion_tokens, total_tokens
        self.events: Counter[str] = Counter()  # requests, retries, and failures by kind

    async def __aenter__(self) -> ChatClient:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key and urlsplit(self.config.base_url).username is not None:
            raise ConfigError(
                f"the base URL carries credentials and ${self.config.api_key_env} is set: use one of them, not both"
            )
        register_url_secrets(self.config.base_url)
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        slots = max(1, self.config.concurrency)
        self._slots = asyncio.Semaphore(slots)
        self._url = chat_url(self.config.base_url)
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=slots),
            trust_env=True,  # proxies, as httpx did
            timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
        )
        return self

    async def __aexit__(self, *exc) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _pace(self) -> None:
        rate = self.config.rate_limit_per_s
        if not rate:
            return
        async with self._rate_lock:
            now = time.monotonic()
            wait = self._next_start - now
            self._next_start = max(now, self._next_start) + 1.0 / rate
        if wait > 0:
            await asyncio.sleep(wait)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.config.max_backoff_s)
            except ValueError:
                pass
        base = min(self.config.backoff_s * (2**attempt), self.config.max_backoff_s)
        return base * (0.5 + random.random() / 2)  # jitter spreads retries of concurrent requests

    def _opened(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        assert self._session is not None and self._slots is not None, "use `async with ChatClient(...)`"
        return self._session, self._slots

    async def _post(self, session: aiohttp.ClientSession, payload: dict) -> tuple[dict, int]:
        attempt = 0
        while True:
            attempt += 1
            self.events["requests"] += 1
            retry_after = None
            try:
                await self._pace()
                async with session.post(self._url, json=payload) as resp:
                    data = await resp.read()
                    status, retry_after = resp.status, resp.headers.get("retry-after")
                text = data.decode("utf-8", errors="replace")  # bytes that are not UTF-8 read as U+FFFD
                if status == 200:
                    try:
                        body = json.loads(text)
                        if not isinstance(body["choices"][0]["message"], dict):
                            raise TypeError("message is not an object")
                    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
                        self.events["failed_malformed"] += 1
                        raise ChatError("malformed", f"unexpected reply {text[:200]!r}", attempts=attempt) from None
                    return body, attempt
                if status not in RETRY_STATUS:
                    self.events["failed_http"] += 1
                    raise ChatError("http", text[:200], status=status, attempts=attempt)
                failure = ChatError("http", text[:200], status=status, attempts=attempt)
            except TimeoutError:
                failure = ChatError("timeout", f"no reply within {self.config.timeout_s:g} s", attempts=attempt)
            except aiohttp.ClientError as exc:
                failure = ChatError("transport", str(exc) or type(exc).__name__, attempts=attempt)
            if attempt > self.config.max_retries:
                self.events[f"failed_{failure.kind}"] += 1
                raise failure
            self.events["retries"] += 1
            await asyncio.sleep(self._delay(attempt - 1, retry_after))

    async def complete(self, messages: list[dict], **params) -> ChatResult:
        """One chat completion, retried as configured; raises ChatError when it fails for good."""
        session, slots = self._opened()
        payload = {"model": self.config.model, "messages": messages, **params}
        async with slots:
            start = time.monotonic()
            body, attempts = await self._post(session, payload)
        usage = _usage(body.get("usage"))
        self.usage.update(usage)
        text = body["choices"][0]["message"].get("content") or ""
        if isinstance(text, list):  # content parts: their text
            text = "".join(p["text"] for p in text if isinstance(p, dict) and isinstance(p.get("text"), str))
        elif not isinstance(text, str):  # anything else is kept as its JSON
            text = json.dumps(text)
        return ChatResult(scrub(text), usage, attempts, time.monotonic() - start)

    async def stream(self, messages: list[dict], **params) -> AsyncIterator[str]:
        """Text deltas of a streamed completion (server-sent events); no retries once streaming.
        The timeout applies to each wait for more of the stream, not to the whole of it."""
        session, slots = self._opened()
        payload = {"model": self.config.model, "messages": messages, "stream": True, **params}
        timeout = aiohttp.ClientTimeout(total=None, connect=self.config.timeout_s, sock_read=self.config.timeout_s)
        try:
            async with slots, session.post(self._url, json=payload, timeout=timeout) as resp:
                if resp.status != 200:
                    raise ChatError("http", (await resp.read()).decode(errors="replace")[:200], status=resp.status)
                async for raw in resp.content:
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        delta = json.loads(data)["choices"][0].get("delta", {}).get("content")
                    except (ValueError, KeyError, IndexError):
                        raise ChatError("malformed", f"bad stream chunk {data[:120]!r}") from None
                    if delta:
                        yield delta
        except TimeoutError:
            raise ChatError("timeout", f"the stream stalled for {self.config.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise ChatError("transport", str(exc) or type(exc).__name__) from None


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _usage(raw) -> dict[str, int]:
    """The token counts of a reply; a count that is not a whole number of tokens reads as 0."""
    raw = raw if isinstance(raw, dict) else {}
    counts = {}
    for k in USAGE_KEYS:
        v = raw.get(k)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1e12
        counts[k] = int(v) if ok else 0
    return counts


def complete_sync(config: ChatConfig, messages: list[dict], **params) -> ChatResult:
    """Blocking convenience wrapper for one request."""

    async def run():
        async with ChatClient(config) as client:
            return await client.complete(messages, **params)

    return asyncio.run(run())
