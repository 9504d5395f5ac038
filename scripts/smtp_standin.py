"""A real SMTP server (aiosmtpd) for Herald's tests and quickstart.

Messages are stored in a Maildir (one file per message, envelope in X-MailFrom/X-RcptTo).
Recipients whose local part starts with a marker get scripted answers, so tests can drive
every error path through a real SMTP conversation:

  reject-...@  -> 550 (permanent)       busy-...@  -> 451 (transient)
  slow-...@    -> accepted after SLOW_SECONDS (default 3) in DATA

Usage: python smtp_standin.py --port 2525 --maildir DIR [--slow-seconds 3]
"""

import argparse
import asyncio
import os
import signal

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


class ScriptedMailbox(Mailbox):
    def __init__(self, maildir, slow_seconds):
        super().__init__(maildir)
        self.slow_seconds = slow_seconds

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject-"):
            return "550 5.1.1 mailbox unavailable (scripted)"
        if local.startswith("busy-"):
            return "451 4.3.0 try again later (scripted)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(rcpt.lower().startswith("slow-") for rcpt in envelope.rcpt_tos):
            await asyncio.sleep(self.slow_seconds)
        return await super().handle_DATA(server, session, envelope)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    args = parser.parse_args()
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(args.maildir, sub), exist_ok=True)
    controller = Controller(
        ScriptedMailbox(args.maildir, args.slow_seconds), hostname=args.host, port=args.port
    )
    controller.start()
    print(f"smtp stand-in listening on {args.host}:{args.port}, maildir {args.maildir}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
