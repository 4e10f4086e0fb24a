"""Verifies a delivery with the reference Standard Webhooks library.

Reads JSON from stdin: {"secret": "whsec_...", "headers": {...}, "body": "..."}.
Exits 0 when the signature verifies, 1 when it does not, 2 on setup errors.
"""
import json
import sys

try:
    from standardwebhooks.webhooks import Webhook
except ImportError:
    print("pip install standardwebhooks", file=sys.stderr)
    sys.exit(2)

request = json.load(sys.stdin)
try:
    Webhook(request["secret"]).verify(request["body"], request["headers"])
except Exception as error:  # the library raises its own verification error
    print(f"verification failed: {error}", file=sys.stderr)
    sys.exit(1)
sys.exit(0)
