"""Verifies one webhook request with the official `standardwebhooks` package.

Reads {"secret", "headers", "body"} as JSON on stdin; exits 0 when the
signature verifies, 1 (with the reason on stderr) when it does not.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

req = json.load(sys.stdin)
try:
    payload = Webhook(req["secret"]).verify(req["body"], req["headers"])
except Exception as e:  # the package raises its own error type
    print(f"not verified: {e!r}", file=sys.stderr)
    sys.exit(1)
print(json.dumps(payload))
