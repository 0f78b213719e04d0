"""A real local HTTP server speaking the OpenAI chat-completions protocol, for tests and benches.

It stands in for a remote paid VLM API (the only thing we fake). A `responder(request, n)`
callable decides each reply: text, HTTP status, delay, headers, or a raw malformed body.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    headers: dict = field(default_factory=dict)
    raw: str | bytes | None = None  # sent as the body verbatim (malformed replies; bytes need not be UTF-8)
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
    chunk_delay_s: float = 0.0  # pause between streamed chunks (to watch a stream arrive)


class FakeOpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, responder):
        self.responder = responder
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAIServer
    # Keep-alive like a real API (HTTP/1.0 would open a connection per request), and headers and
    # body leave at once: with Nagle on, the body waits for the client's delayed ACK (~40 ms).
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            request = {}
        request["_headers"] = dict(self.headers)
        request["_path"] = self.path
        with self.server._lock:
            self.server.requests.append(request)
            n = len(self.server.requests)
        reply = self.server.responder(request, n)
        if isinstance(reply, str):
            reply = Reply(reply)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        try:
            if reply.status == 200 and reply.raw is None and request.get("stream"):
                self._stream(reply)
                return
            body = (
                reply.raw
                if reply.raw is not None
                else json.dumps(
                    {
                        "id": f"chatcmpl-{n}",
                        "object": "chat.completion",
                        "model": request.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply.text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": reply.usage,
                    }
                    if reply.status == 200
                    else {"error": {"message": reply.text or "error"}}
                )
            )
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    def _stream(self, reply: Reply):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")  # no length: the stream ends when the connection does
        self.end_headers()
        words = reply.text.split(" ")
        for i, w in enumerate(words):
            chunk = {"choices": [{"index": 0, "delta": {"content": w + (" " if i < len(words) - 1 else "")}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            if reply.chunk_delay_s:
                time.sleep(reply.chunk_delay_s)
        self.wfile.write(b"data: [DONE]\n\n")


@contextmanager
def fake_openai_server(responder=lambda request, n: Reply("ok")):
    """Start the server on a free loopback port for the duration of the block."""
    server = FakeOpenAIServer(responder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
