#!/usr/bin/env python3
"""A fake Telegram Bot API for the benchmark: answers getChat and sendMessage.

Usage: telegram_stub.py PORT [limited|ok]

limited (the default) behaves as Telegram does with one chat: one message per second,
then `429 Too Many Requests` with `retry_after: 1`, so the server's relay stays as idle
as it would be in production during a rush of orders. `ok` accepts every message, which
makes the relay deliver at full speed and measures its cost too.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[2] if len(sys.argv) > 2 else "limited"
LOCK = threading.Lock()
STATE = {"sent": 0, "refused": 0, "last": 0.0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as reqwest expects

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        status, body = 200, {"ok": True, "result": {"id": 1, "type": "private"}}
        if self.path.endswith("/sendMessage"):
            with LOCK:
                now = time.monotonic()
                if MODE == "limited" and now - STATE["last"] < 1.0:
                    STATE["refused"] += 1
                    status = 429
                    body = {"ok": False, "error_code": 429,
                            "description": "Too Many Requests: retry after 1",
                            "parameters": {"retry_after": 1}}
                else:
                    STATE["last"] = now
                    STATE["sent"] += 1
                    body = {"ok": True, "result": {"message_id": STATE["sent"],
                                                   "date": int(time.time())}}
        self.reply(status, body)

    def do_GET(self):  # GET /stats: how many messages were accepted and refused
        with LOCK:
            self.reply(200, dict(STATE, mode=MODE))

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
