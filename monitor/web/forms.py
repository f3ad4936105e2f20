"""Form bodies of the pages' POSTs, read without python-multipart: urlencoded fields, and for
the OPML upload a multipart/form-data body parsed with the standard library's email parser."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qs

from fastapi import Request


async def fields(request: Request) -> dict[str, str]:
    """An urlencoded form body: the last value of each field."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def upload(request: Request, name: str) -> tuple[bytes, str] | None:
    """The file sent in field ``name`` of a multipart/form-data body: (bytes, file name)."""
    kind = request.headers.get("content-type", "")
    if not kind.lower().startswith("multipart/form-data"):
        return None
    head = f"Content-Type: {kind}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + await request.body())
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == name:
            data = part.get_payload(decode=True)
            filename = part.get_filename() or name
            return (data if isinstance(data, bytes) else b""), str(filename)
    return None


async def lists(request: Request) -> dict[str, list[str]]:
    """An urlencoded form body with every value of each field (checkbox groups)."""
    body = (await request.body()).decode("utf-8", "replace")
    return parse_qs(body, keep_blank_values=True)
