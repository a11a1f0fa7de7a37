"""Bytes -> text for every file the workbench reads (documents, datasets, edited copies): one encoding detector.

Detection prefers UTF-8 (with or without BOM), takes UTF-16 when a BOM says so, then CP949 / EUC-KR when what it
decodes to is mostly Hangul (the usual Korean Windows encodings; CP949 is a superset of EUC-KR), and finally what
charset-normalizer finds with little noise. Binary data (NUL bytes without a UTF-16 BOM) is refused.
"""

from __future__ import annotations

from workbench.errors import DocumentError

# A file whose first bytes hold a NUL (and no UTF-16 BOM) is binary, not text.
_SNIFF_BYTES = 8192



def decode_text(data: bytes, name: str = "<bytes>", *, encoding: str = "auto") -> tuple[str, str]:
    """Decode the bytes of a text file, detecting its encoding (`encoding="auto"`) or in the one given.

    Args:
        data: the file's bytes.
        name: how messages name the file.
        encoding: "auto", or a Python codec name the user chose ("utf-8" also accepts a BOM).

    Returns:
        (text, encoding), with the encoding as Python names it ("utf-8", "utf-8-sig", "cp949", ...).

    Raises:
        DocumentError: the bytes are binary, or no encoding decodes them into sensible text.
    """
    if encoding != "auto":
        return _decode_as(data, name, encoding)
    if data.startswith(b"\xef\xbb\xbf"):
        return data.decode("utf-8-sig", errors="strict"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise DocumentError(f"{name}: starts with a UTF-16 byte-order mark but is not valid UTF-16 ({exc}).") from exc
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise DocumentError(
            f"{name}: looks like a binary file, not text (it contains NUL bytes). "
            f"Upload text, Markdown, CSV, HTML, PDF or DOCX files."
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp949")
        # CP949 accepts many byte pairs; only take it when what comes out is mostly Hangul.
        if _hangul_share(text) >= 0.5:
            return text, "cp949"
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    if best is not None and best.chaos < 0.2:
        return str(best), best.encoding
    raise DocumentError(
        f"{name}: cannot tell its text encoding (not UTF-8, not CP949/EUC-KR). "
        f"Save it as UTF-8 and upload it again."
    )


def _hangul_share(text: str) -> float:
    non_ascii = [c for c in text if ord(c) > 127]
    if not non_ascii:
        return 1.0
    hangul = sum(1 for c in non_ascii if "\uac00" <= c <= "\ud7a3" or "\u3131" <= c <= "\u318e")
    # Typographic marks that Korean documents use (·, “ ”, ※, …) count as neutral.
    neutral = sum(1 for c in non_ascii if "\u2000" <= c <= "\u33ff" and not ("\u3131" <= c <= "\u318e") or c in "·×÷")
    return hangul / max(len(non_ascii) - neutral, 1)




def _decode_as(data: bytes, name: str, encoding: str) -> tuple[str, str]:
    try:
        return data.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding), encoding
    except LookupError as exc:
        raise DocumentError(f"{name}: {encoding!r} is not a text encoding Python knows. Use auto, utf-8 or cp949.") from exc
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{name} is not valid {encoding.upper()} text ({exc.reason} at byte {exc.start}). Choose the "
                            f"right encoding (auto detects UTF-8 and CP949), or save the file as UTF-8.") from exc
