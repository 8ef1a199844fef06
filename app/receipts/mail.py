"""Receipts by e-mail: one message per receipt, the PDF attached, through SMTP.

``smtplib`` runs in a worker thread so the event loop keeps serving while a slow
server answers. Nothing of the donor but the address the message goes to is logged.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from app.settings import Settings


class MailNotConfigured(Exception):
    pass


def _send(settings: Settings, message: EmailMessage) -> None:
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
    ) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(message)


async def send_pdf(
    settings: Settings, *, to: str, subject: str, text: str, pdf: bytes, filename: str
) -> None:
    """Send one message with the PDF attached; raises ``smtplib.SMTPException``/``OSError``."""
    if not settings.smtp_host:
        raise MailNotConfigured("no SMTP server is set (PLEDGELINE_SMTP_HOST)")
    message = EmailMessage()
    message["From"] = settings.receipts_mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=settings.receipts_mail_from.rpartition("@")[2])
    message.set_content(text)
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    await asyncio.to_thread(_send, settings, message)
