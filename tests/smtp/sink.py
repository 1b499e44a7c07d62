"""A real SMTP server for the tests: writes each message it accepts to a folder as
NNNNNN.eml (atomically). Recipients at bounce@ get 550 (permanent), at defer@ 451
(transient) every time, at defer-once@ 451 the first time only (what a retry must get
past).

Usage: sink.py FOLDER. Prints `READY <port>` once listening on 127.0.0.1; stops when its
standard input closes.
"""

import pathlib
import socket
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, folder):
        self.folder = pathlib.Path(folder)
        self.count = 0
        self.deferred = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce@"):
            return "550 5.1.1 No such user"
        if address.startswith("defer@"):
            return "451 4.3.0 Try again later"
        if address.startswith("defer-once@") and address not in self.deferred:
            self.deferred.add(address)
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        tmp = self.folder / f".{self.count}.tmp"
        tmp.write_bytes(envelope.original_content)
        tmp.rename(self.folder / f"{self.count:06}.eml")
        return "250 OK"


# A free port (the controller checks that it listens by connecting to its port, so it
# cannot be given 0).
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
controller = Controller(Sink(sys.argv[1]), hostname="127.0.0.1", port=port)
controller.start()
print(f"READY {port}", flush=True)
try:
    sys.stdin.read()
finally:
    controller.stop()
