"""Bytes -> text for every file the workbench reads (documents, datasets, edited copies): one encoding detector.

Detection prefers UTF-8 (with or without BOM), takes UTF-16 when a BOM says so or when, without one, its NUL bytes
all sit on one side of each byte pair (ASCII in UTF-16 LE is "H\\0e\\0..."), then the legacy encodings a user would
have: CP949 / EUC-KR when what it decodes to is mostly Hangul (the usual Korean Windows encodings; CP949 is a superset
of EUC-KR), Latin-1 / cp1252 when it reads as Western European text (accented letters inside words). Only then does
it ask charset-normalizer, whose pick is a guess: "Café crème" in Latin-1 comes back from it as cp1250 "crčme".
Binary data (NUL bytes in no UTF-16 pattern) is refused.

`decode` says how sure it is (`Decoded.confidence`) and carries a one-line `warning` when the choice is a guess, so
that the ingest report, the CLI and the pages can show it; `decode_text` is the plain (text, encoding) form.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Literal

from workbench.texts import Text
from workbench.errors import DocumentError

log = logging.getLogger(__name__)

# A file whose first bytes hold a NUL (and no UTF-16 BOM or pattern) is binary, not text.
_SNIFF_BYTES = 8192

Confidence = Literal["certain", "likely", "guess"]


@dataclasses.dataclass(frozen=True)
class Decoded:
    """A file's text and how it was decoded.

    `confidence`: "certain" (a BOM, valid UTF-8, or the encoding the user chose), "likely" (a legacy encoding whose
    text looks right: mostly Hangul for CP949, accented letters inside words for Latin-1), "guess" (anything else
    that decodes with little noise). `warning` is one line for the user when it is not certain enough to keep quiet.
    """

    text: str
    encoding: str
    confidence: Confidence = "certain"
    warning: str = ""


def decode_text(data: bytes, name: str = "<bytes>", *, encoding: str = "auto") -> tuple[str, str]:
    """`decode(...)` as (text, encoding); a warning, when there is one, goes to the `workbench.textcodec` log."""
    decoded = decode(data, name, encoding=encoding)
    return decoded.text, decoded.encoding


def decode(data: bytes, name: str = "<bytes>", *, encoding: str = "auto") -> Decoded:
    """Decode the bytes of a text file, detecting its encoding (`encoding="auto"`) or in the one given.

    Args:
        data: the file's bytes.
        name: how messages name the file.
        encoding: "auto", or a Python codec name the user chose ("utf-8" also accepts a BOM).

    Returns:
        The text, the encoding as Python names it ("utf-8", "utf-8-sig", "utf-16-le", "cp949", "latin-1",
        "cp1252", ...), the confidence and a warning when unsure (also logged).

    Raises:
        DocumentError: the bytes are binary, or no encoding decodes them into sensible text.
    """
    decoded = _decode_as(data, name, encoding) if encoding != "auto" else _detect(data, name)
    if decoded.warning:
        log.warning(decoded.warning)
    elif decoded.confidence != "certain":
        # Not UTF-8: say which encoding was read, so a wrong pick is visible (the CLI prints these lines).
        log.info("%s: read as %s (not UTF-8)", name, decoded.encoding)
    return decoded


def _detect(data: bytes, name: str) -> Decoded:
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return Decoded(data.decode("utf-8-sig", errors="strict"), "utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"{name}: starts with a UTF-8 byte-order mark but is not valid UTF-8 ({exc.reason} at "
                                f"byte {exc.start}). Save it as UTF-8 again.",
                                ko=f"{name}: UTF-8 바이트 순서 표시(BOM)로 시작하지만 올바른 UTF-8이 아닙니다 "
                                   f"({exc.start}번째 바이트: {exc.reason}). UTF-8로 다시 저장하세요.") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return Decoded(data.decode("utf-16"), "utf-16")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"{name}: starts with a UTF-16 byte-order mark but is not valid UTF-16 ({exc}).",
                                ko=f"{name}: UTF-16 바이트 순서 표시(BOM)로 시작하지만 올바른 UTF-16이 아닙니다 "
                                   f"({exc}).") from exc
    if b"\x00" in data[:_SNIFF_BYTES]:
        return _utf16_without_bom(data, name)
    try:
        return Decoded(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp949")
        # CP949 accepts many byte pairs; only take it when what comes out is mostly Hangul.
        if _hangul_share(text) >= 0.5:
            return Decoded(text, "cp949", "likely")
    except UnicodeDecodeError:
        pass
    western = _western(data)
    if western is not None:
        return western
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    if best is not None and best.chaos < 0.2:
        return Decoded(str(best), best.encoding, "guess",
                       Text(f"{name}: not UTF-8; its encoding was guessed as {best.encoding}. If letters look wrong, save "
                            f"the file as UTF-8 and load it again.",
                            f"{name}: UTF-8이 아니어서 인코딩을 {best.encoding}(으)로 짐작했습니다. 글자가 이상하면 UTF-8로 "
                            f"저장해 다시 불러오세요."))
    raise DocumentError(
        f"{name}: cannot tell its text encoding (not UTF-8, UTF-16, CP949/EUC-KR or Latin-1/cp1252). "
        f"Save it as UTF-8 and upload it again.",
        ko=f"{name}: 텍스트 인코딩을 알 수 없습니다 (UTF-8, UTF-16, CP949/EUC-KR, Latin-1/cp1252가 아님). UTF-8로 "
           f"저장해 다시 올리세요."
    )


def _utf16_without_bom(data: bytes, name: str) -> Decoded:
    """UTF-16 without a byte-order mark, told by where its NUL bytes sit (the high byte of ASCII characters), or a
    DocumentError that calls the file binary."""
    sample = data[:_SNIFF_BYTES]
    even = sum(1 for i in range(0, len(sample), 2) if sample[i] == 0)
    odd = sum(1 for i in range(1, len(sample), 2) if sample[i] == 0)
    # ASCII in UTF-16 puts its NULs on one side of each pair (a few Hangul such as U+AC00 "가" put one on the other);
    # binary formats have them on both sides alike. A strict decode without control characters must confirm it.
    if max(even, odd) >= 4 and min(even, odd) * 4 <= max(even, odd):
        codec = "utf-16-le" if odd > even else "utf-16-be"
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            text = None
        if text is not None and not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", text):
            return Decoded(text, codec, "likely")
    raise DocumentError(
        f"{name}: looks like a binary file, not text (it contains NUL bytes and is not UTF-16 text either). "
        f"Upload text, Markdown, CSV, HTML, PDF or DOCX files, or save the file as UTF-8.",
        ko=f"{name}: 텍스트가 아닌 바이너리 파일로 보입니다 (NUL 바이트가 있고 UTF-16 텍스트도 아닙니다). 텍스트, "
           f"Markdown, CSV, HTML, PDF, DOCX 파일을 올리거나 UTF-8로 저장하세요."
    )


# Letters of Western European languages outside ASCII (Latin-1's À-ÿ without × ÷), and cp1252's typographic marks.
_WESTERN_LETTERS = re.compile(r"[À-ÖØ-öø-ÿŒœŠšŽžŸƒ]")
_WESTERN_MARKS = set("‘’‚“”„•–—…€™«»°§©®±²³µ¶·¹º¼½¾¿¡¢£¥ \u00a0")


def _western(data: bytes) -> Decoded | None:
    """Latin-1 / cp1252 when the text reads as Western European: its non-ASCII characters are accented letters
    next to ASCII letters (café, naïve) or cp1252's quotes and dashes; None otherwise. cp1252 is a superset of
    Latin-1's printable characters; "latin-1" is reported when no byte uses cp1252's extra range 0x80-0x9F."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    non_ascii = [m for m in re.finditer(r"[^\x00-\x7f]", text)]
    if not non_ascii:
        return None
    # An accented letter beside an ASCII letter (café, Straße), or standing alone as a word (French "à").
    inside_words = sum(1 for m in non_ascii if _WESTERN_LETTERS.match(m.group())
                       and re.search(r"[A-Za-z]|^\W\W$", text[max(m.start() - 1, 0):m.start()] + text[m.end():m.end() + 1]))
    marks = sum(1 for m in non_ascii if m.group() in _WESTERN_MARKS)
    ascii_letters = len(re.findall(r"[A-Za-z]", text))
    if (inside_words + marks) / len(non_ascii) < 0.9 or ascii_letters < 2 * len(non_ascii):
        return None
    encoding = "cp1252" if re.search(rb"[\x80-\x9f]", data) else "latin-1"
    return Decoded(text, encoding, "likely")


def _hangul_share(text: str) -> float:
    non_ascii = [c for c in text if ord(c) > 127]
    if not non_ascii:
        return 1.0
    hangul = sum(1 for c in non_ascii if "\uac00" <= c <= "\ud7a3" or "\u3131" <= c <= "\u318e")
    # Typographic marks that Korean documents use (·, “ ”, ※, …) count as neutral.
    neutral = sum(1 for c in non_ascii if "\u2000" <= c <= "\u33ff" and not ("\u3131" <= c <= "\u318e") or c in "·×÷")
    return hangul / max(len(non_ascii) - neutral, 1)




def _decode_as(data: bytes, name: str, encoding: str) -> Decoded:
    try:
        return Decoded(data.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding), encoding)
    except LookupError as exc:
        raise DocumentError(f"{name}: {encoding!r} is not a text encoding Python knows. Use auto, utf-8 or cp949.",
                            ko=f"{name}: {encoding!r}은(는) 파이썬이 아는 텍스트 인코딩이 아닙니다. auto, utf-8, "
                               f"cp949를 쓰세요.") from exc
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{name} is not valid {encoding.upper()} text ({exc.reason} at byte {exc.start}). Choose the "
                            f"right encoding (auto detects UTF-8, UTF-16, CP949 and Latin-1), or save the file as UTF-8.",
                            ko=f"{name}은(는) 올바른 {encoding.upper()} 텍스트가 아닙니다 ({exc.start}번째 바이트: "
                               f"{exc.reason}). 맞는 인코딩을 고르거나(auto는 UTF-8, UTF-16, CP949, Latin-1을 "
                               f"알아봅니다) UTF-8로 저장하세요.") from exc
