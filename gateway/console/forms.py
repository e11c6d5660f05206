"""The console's form bodies: urlencoded, small, one value per field, and why one is refused."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request

MAX_FORM_BYTES = 8 * 1024
MAX_FORM_FIELDS = 32


class FormRefused(Exception):
    """A POST that is not acted on; `status` and `message` are what the operator sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


CSRF_MESSAGE = (
    "This form was not sent by a console page of this session (its CSRF token is missing or "
    "wrong); reload the page and try again."
)


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (one value per field, the first), at most MAX_FORM_BYTES."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormRefused(415, "The console accepts only its own forms.")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            raise FormRefused(413, f"The form is larger than {MAX_FORM_BYTES} bytes.")
    try:
        fields = parse_qs(raw.decode("utf-8"), max_num_fields=MAX_FORM_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise FormRefused(400, "The form could not be read.") from None
    return {name: values[0] for name, values in fields.items()}
