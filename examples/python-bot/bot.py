#!/usr/bin/env python3
"""A minimal Parley bot in Python, standard library only.

Parley's http_component host POSTs each stanza sent to the bot domain here as
JSON; the JSON answer becomes the reply. This bot answers "You said: <body>"
to every message with a body, a short help text to "help", and nothing (204)
to the rest.

    PARLEY_WEBHOOK_SECRET=whsec_... PORT=8081 python3 bot.py

With PARLEY_WEBHOOK_SECRET set (the host's secret), unsigned or badly signed
requests get 401. PORT=0 picks a free port. See examples/README.md.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SKEW = 5 * 60  # seconds webhook-timestamp may be from now, either way
MAX_BODY = 1 << 20  # Parley posts one stanza at a time
HELP = 'I am an echo bot: send me any text and I say it back. Send "help" for this message.'


def signing_key(secret):
    """The HMAC key of a secret, as Parley derives it: "whsec_<base64>" is
    its decoded bytes, any other string is used as it is."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def verify(secret, headers, body, now):
    """Check the Standard Webhooks signature; raise ValueError if it is bad.

    webhook-signature holds one or more space-separated "v1,<base64>"
    entries, each an HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>".
    """
    key = signing_key(secret)
    if not key:
        raise ValueError("no secret to verify with")  # an empty key proves nothing
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if not (msg_id and ts and sigs):
        raise ValueError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not (ts.isascii() and ts.isdigit()):
        raise ValueError(f"webhook-timestamp {ts!r} is not Unix seconds")
    if abs(now - int(ts)) > MAX_SKEW:
        raise ValueError(f"webhook-timestamp is {now - int(ts):.0f}s from now")
    signed = f"{msg_id}.{ts}.".encode() + body
    want = hmac.new(key, signed, hashlib.sha256).digest()
    for sig in sigs.split():
        version, _, b64 = sig.partition(",")
        try:
            got = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            continue
        if version == "v1" and hmac.compare_digest(got, want):  # constant time
            return
    raise ValueError("no v1 signature matches")


class Handler(BaseHTTPRequestHandler):
    timeout = 30  # seconds a client may take to send its request

    def do_POST(self):
        length = self.headers.get("Content-Length", "")
        if not (length.isascii() and length.isdigit()):
            return self.answer(411, b"send a Content-Length\n")
        if int(length) > MAX_BODY:
            return self.answer(413, b"request too large\n")
        body = self.rfile.read(int(length))
        # Verify the raw bytes, before parsing them.
        secret = self.server.secret
        if secret:
            try:
                verify(secret, self.headers, body, time.time())
            except ValueError as e:
                self.log_message("refused a request: %s", e)
                return self.answer(401, b"bad signature\n")
        try:
            req = json.loads(body)
            kind, text = req.get("kind"), req.get("body")
        except (ValueError, AttributeError):
            return self.answer(400, b"not a Parley request\n")
        if kind != "message" or not isinstance(text, str) or not text:
            return self.answer(204)  # no reply
        reply = HELP if text.strip().lower() == "help" else "You said: " + text
        # Left out of the reply, Parley fills in: to and from are the
        # request's swapped, kind is message, type is the incoming one's.
        self.answer(200, json.dumps({"body": reply}).encode(), "application/json")

    def answer(self, status, payload=b"", content_type="text/plain; charset=utf-8"):
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main():
    port = int(os.environ.get("PORT", "8081"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.secret = os.environ.get("PARLEY_WEBHOOK_SECRET", "")
    if not server.secret:
        print("PARLEY_WEBHOOK_SECRET is not set: anyone who can reach this bot can speak to it", file=sys.stderr)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
