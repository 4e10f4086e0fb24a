#!/usr/bin/env python3
"""A local webhook receiver for trying hookline by hand.

Prints each POST (Standard Webhooks headers and body), verifies the
signature when WEBHOOK_SECRET is set and `standardwebhooks` is installed,
and answers 200 (or the status in RECEIVER_STATUS, e.g. 500 to see retries).

    python3 deploy/receiver.py [port]        # default 8088
"""
import http.server
import json
import os
import sys

SECRET = os.environ.get("WEBHOOK_SECRET")
STATUS = int(os.environ.get("RECEIVER_STATUS", "200"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        verdict = ""
        if SECRET:
            try:
                from standardwebhooks.webhooks import Webhook

                Webhook(SECRET).verify(body.decode(), dict(self.headers))
                verdict = "signature OK"
            except ImportError:
                verdict = "(pip install standardwebhooks to verify)"
            except Exception as error:
                verdict = f"signature INVALID: {error}"
        print(f"POST {self.path}  webhook-id={self.headers.get('webhook-id')}  {verdict}")
        try:
            print("  " + json.dumps(json.loads(body)))
        except ValueError:
            print("  " + body.decode(errors="replace"))
        sys.stdout.flush()
        self.send_response(STATUS)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8088
print(f"receiving on http://127.0.0.1:{port}/ (answering {STATUS})")
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
