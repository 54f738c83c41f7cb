"""The tests' SMTP sink: aiosmtpd's Mailbox handler (every mail received is written to a
maildir), except that it refuses for good (550) any recipient whose local part starts
with "bounce", as a real server refuses an unknown mailbox. Started by the hub tests
(tests/hub/common.rs) and the browser tests (tests/browser/helpers.mjs) as
`python -m aiosmtpd -c smtp_sink.Sink <maildir>`, with this folder on PYTHONPATH."""

from aiosmtpd.handlers import Mailbox


class Sink(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("bounce"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"
