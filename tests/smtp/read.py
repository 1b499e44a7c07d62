"""Prints an email file as JSON, decoded as its recipient's mail program would show it:
{"headers": {name: value}, "parts": [{"type": "text/plain", "text": "..."}]}.

Usage: read.py FILE.eml
"""

import email
import email.policy
import json
import sys

with open(sys.argv[1], "rb") as f:
    message = email.message_from_binary_file(f, policy=email.policy.default)
parts = [
    {"type": part.get_content_type(), "text": part.get_content()}
    for part in message.walk()
    if not part.is_multipart()
]
print(json.dumps({
    "headers": {name: str(value) for name, value in message.items()},
    "content_type": message.get_content_type(),
    "parts": parts,
}))
