"""Undo of charge: refund the card. stdin holds the charge step's stdin plus its "result"."""

import json
import sys

request = json.load(sys.stdin)
receipt = request["result"]["receipt"]
print(f"refunding {receipt}", file=sys.stderr)
print(json.dumps({"refunded": receipt}))
