"""Form bodies of the pages' POSTs, read without python-multipart: urlencoded fields, and for
the OPML upload a multipart/form-data body parsed with the standard library's email parser."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from urllib.parse import parse_qs

from fastapi import Request


async def fields(request: Request) -> dict[str, str]:
    """An urlencoded form body: the last value of each field."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def upload(request: Request, name: str) -> tuple[bytes, str] | None:
    """The file sent in field ``name`` of a multipart/form-data body: (bytes, file name)."""
    part = _part(request.headers.get("content-type", ""), await request.body(), name)
    if part is None:
        return None
    data = part.get_payload(decode=True)
    filename = part.get_filename() or name
    return (data if isinstance(data, bytes) else b""), str(filename)


def _part(kind: str, body: bytes, name: str) -> EmailMessage | None:
    """Field ``name`` of a multipart/form-data ``body`` (``kind``: its Content-Type)."""
    if not kind.lower().startswith("multipart/form-data"):
        return None
    head = f"Content-Type: {kind}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == name:
            return part if isinstance(part, EmailMessage) else None
    return None


def text_field(kind: str, body: bytes, name: str) -> str:
    """The last value of text field ``name`` of a form body, urlencoded or multipart (``kind``:
    its Content-Type); "" when absent. What the CSRF check reads before any route runs."""
    if kind.lower().startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).get(name)
        return values[-1] if values else ""
    part = _part(kind, body, name)
    try:
        content = part.get_content() if part is not None else ""
    except (LookupError, ValueError):  # an unknown charset or a broken part: no field
        return ""
    return content.strip() if isinstance(content, str) else ""


async def lists(request: Request) -> dict[str, list[str]]:
    """An urlencoded form body with every value of each field (checkbox groups)."""
    body = (await request.body()).decode("utf-8", "replace")
    return parse_qs(body, keep_blank_values=True)
