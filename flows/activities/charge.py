"""Charge the card for an order. Reads the workflow input as JSON on stdin.

The first attempt fails on purpose (as a flaky card network would), so the demo
shows a retry; LF_IDEMPOTENCY_KEY is what a real payment API would get to make
the retry safe.
"""

import json
import os
import sys

request = json.load(sys.stdin)
order = request["input"]
attempt = int(os.environ["LF_ATTEMPT"])
if attempt == 1:
    print("card network busy (the demo fails the first attempt on purpose)", file=sys.stderr)
    sys.exit(1)
print(json.dumps({
    "receipt": f"RC-{order['order_id']}",
    "amount": order["amount"],
    "idempotency_key": os.environ["LF_IDEMPOTENCY_KEY"],
}))
