"""Sandbox label documents: a real one-page 4x6 in PDF and a ZPL II label, no dependencies.

The PDF is written by hand (catalog, page, Helvetica, one content stream, exact xref offsets), so
any PDF reader opens it, and the sandbox pulls in no PDF library for a few lines of text. The
barcode is drawn as Code 39 bars, which a scanner app can read off the screen in a demo.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LabelContent", "render_pdf", "render_zpl"]

_PAGE_WIDTH, _PAGE_HEIGHT = 288, 432  # 4 x 6 inches in points

# Code 39: each symbol is 9 elements (bar, space, …), "1" = wide. Enough for tracking numbers.
_CODE39 = {
    "0": "000110100", "1": "100100001", "2": "001100001", "3": "101100000",
    "4": "000110001", "5": "100110000", "6": "001110000", "7": "000100101",
    "8": "100100100", "9": "001100100", "A": "100001001", "B": "001001001",
    "C": "101001000", "D": "000011001", "E": "100011000", "F": "001011000",
    "G": "000001101", "H": "100001100", "I": "001001100", "J": "000011100",
    "K": "100000011", "L": "001000011", "M": "101000010", "N": "000010011",
    "O": "100010010", "P": "001010010", "Q": "000000111", "R": "100000110",
    "S": "001000110", "T": "000010110", "U": "110000001", "V": "011000001",
    "W": "111000000", "X": "010010001", "Y": "110010000", "Z": "011010000",
    "-": "010000101", "*": "010010100",
}  # fmt: skip


@dataclass(frozen=True)
class LabelContent:
    carrier_name: str
    service_name: str
    tracking_number: str
    ship_from: tuple[str, ...]  # address lines, name first
    ship_to: tuple[str, ...]
    weight_text: str
    reference: str = ""
    package_text: str = "1 of 1"
    # Printed as a banner, as real carriers mark return labels, so a dock sees it at a glance.
    is_return: bool = False


def render_pdf(label: LabelContent) -> bytes:
    lines = [
        (10, 16, label.carrier_name.upper()),
        (10, 10, label.service_name),
        *([(12, 12, "RETURN")] if label.is_return else []),
        (8, 8, "FROM:"),
        *[(8, 8, text) for text in label.ship_from],
        (8, 12, "SHIP TO:"),
        *[(11, 12, text) for text in label.ship_to],
        (8, 9, f"WEIGHT: {label.weight_text}   PKG: {label.package_text}"),
        (8, 9, f"REF: {label.reference}" if label.reference else ""),
        (12, 14, f"TRACKING #: {label.tracking_number}"),
    ]
    ops = ["1 w 6 6 276 420 re S"]  # border
    y = _PAGE_HEIGHT - 24
    for size, gap, text in lines:
        y -= gap
        if text:
            ops.append(f"BT /F1 {size} Tf 14 {y} Td ({_pdf_text(text)}) Tj ET")
        y -= size // 2
    ops.append(_pdf_barcode(label.tracking_number, x=14, y=30, height=60))
    content = "\n".join(ops).encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_WIDTH} {_PAGE_HEIGHT}] "
            "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Producer (crossdock sandbox carrier) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def render_zpl(label: LabelContent) -> bytes:
    fields = [
        ("^FO30,30^A0N,50,50", label.carrier_name.upper()),
        ("^FO30,90^A0N,30,30", label.service_name),
        ("^FO560,30^A0N,50,50", "RETURN" if label.is_return else ""),
        *[(f"^FO30,{140 + i * 28}^A0N,24,24", text) for i, text in enumerate(label.ship_from)],
        *[(f"^FO30,{320 + i * 40}^A0N,36,36", text) for i, text in enumerate(label.ship_to)],
        ("^FO30,600^A0N,26,26", f"WEIGHT {label.weight_text}  PKG {label.package_text}"),
        ("^FO30,640^A0N,26,26", f"REF {label.reference}" if label.reference else ""),
    ]
    body = [
        "^XA",
        "^CI28",  # UTF-8 field data
        "^PW812^LL1218",  # 4x6 at 203 dpi
        *[f"{position}^FD{_zpl_text(text)}^FS" for position, text in fields if text],
        f"^FO60,720^BY3^BCN,200,Y,N,N^FD{_zpl_text(label.tracking_number)}^FS",
        "^XZ",
    ]
    return ("\n".join(body) + "\n").encode("utf-8")


def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _zpl_text(text: str) -> str:
    # ^ and ~ start ZPL commands; drop them from data rather than let data become commands.
    return text.replace("^", " ").replace("~", " ")


def _pdf_barcode(value: str, *, x: float, y: float, height: float) -> str:
    symbols = "*" + "".join(c for c in value.upper() if c in _CODE39 and c != "*") + "*"
    narrow, wide = 0.9, 2.2
    rects = []
    cursor = x
    for symbol in symbols:
        for index, element in enumerate(_CODE39[symbol]):
            width = wide if element == "1" else narrow
            if index % 2 == 0:
                rects.append(f"{cursor:.2f} {y} {width:.2f} {height} re")
            cursor += width
        cursor += narrow  # gap between symbols
    return "0 g " + " ".join(rects) + " f"
