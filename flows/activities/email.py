"""Send the confirmation email (printed, in this demo). stdin: {"order": ..., "to": ...}."""

import json
import sys

message = json.load(sys.stdin)
print(f"to {message['to']}: your order {message['order']} is on its way", file=sys.stderr)
print(json.dumps({"sent_to": message["to"]}))
