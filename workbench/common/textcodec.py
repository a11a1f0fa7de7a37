"""Bytes -> text for every file the workbench reads (documents, datasets, edited copies): one encoding detector.

Detection prefers UTF-8 (with or without BOM), takes UTF-16 when a BOM says so or when, without one, its NUL bytes
all sit on one side of each byte pair (ASCII in UTF-16 LE is "H\\0e\\0..."), then the legacy encodings a user would
have. Korean and Japanese first (`_korean_or_japanese`): CP949 / EUC-KR (the usual Korean Windows encodings; CP949 is
a superset of EUC-KR) when it reads as common Hangul syllables, Shift-JIS or EUC-JP when it reads as kana and kanji;
when both read plausibly, or the text is too short to tell, the better one is taken with a warning that names the
other reading and says how to choose (short Shift-JIS text used to come out as Hangul mojibake with only a note).
Then Latin-1 / cp1252 when it reads as Western European text (accented letters inside words). Only then does it ask
charset-normalizer, whose pick is a guess: "Café crème" in Latin-1 comes back from it as cp1250 "crčme".
Binary data (NUL bytes in no UTF-16 pattern) is refused.

The encodings a user can choose instead of auto are `ENCODINGS` (the CLI's --encoding, the pages' Encoding select).

`decode` says how sure it is (`Decoded.confidence`) and carries a one-line `warning` when the choice is a guess, so
that the ingest report, the CLI and the pages can show it; `decode_text` is the plain (text, encoding) form.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Literal

from workbench.common.errors import DocumentError
from workbench.common.texts import Text

log = logging.getLogger(__name__)

# A file whose first bytes hold a NUL (and no UTF-16 BOM or pattern) is binary, not text.
_SNIFF_BYTES = 8192

Confidence = Literal["certain", "likely", "guess"]

# What a user can choose instead of detection, with how the pages and messages name them.
Encoding = Literal["auto", "utf-8", "utf-16", "cp949", "shift_jis", "euc-jp", "gb18030", "big5", "latin-1", "cp1252"]
ENCODINGS: tuple[str, ...] = ("auto", "utf-8", "utf-16", "cp949", "shift_jis", "euc-jp", "gb18030", "big5", "latin-1",
                              "cp1252")
ENCODING_LABELS: dict[str, tuple[str, str]] = {
    "auto": ("auto (detect)", "자동 (감지)"), "utf-8": ("UTF-8", "UTF-8"), "utf-16": ("UTF-16", "UTF-16"),
    "cp949": ("Korean (CP949 / EUC-KR)", "한국어 (CP949 / EUC-KR)"), "shift_jis": ("Japanese (Shift-JIS)", "일본어 (Shift-JIS)"),
    "euc-jp": ("Japanese (EUC-JP)", "일본어 (EUC-JP)"), "gb18030": ("Chinese (GB18030 / GBK)", "중국어 (GB18030 / GBK)"),
    "big5": ("Chinese (Big5)", "중국어 (Big5)"), "latin-1": ("Western (Latin-1)", "서유럽 (Latin-1)"),
    "cp1252": ("Western (Windows-1252)", "서유럽 (Windows-1252)"),
}
# The Python codec behind a choice: Shift-JIS files come from Windows, whose form (cp932) adds ①, ～ and the like.
_CODECS = {"shift_jis": "cp932", "euc-jp": "euc_jp"}
# Below this many letters (non-ASCII) a Korean or Japanese reading is too little evidence to be sure of.
_SHORT = 4


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
    """`decode(...)` as (text, encoding); a warning, when there is one, goes to the `workbench.common.textcodec` log."""
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
    cjk = _korean_or_japanese(data, name)
    if cjk is not None:
        return cjk
    western = _western(data)
    if western is not None:
        return western
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    if best is not None and best.chaos < 0.2:
        return Decoded(str(best), best.encoding, "guess",
                       Text(f"{name}: not UTF-8; its encoding was guessed as {best.encoding}. If letters look wrong, choose "
                            f"the encoding (--encoding, or Encoding on the page) or save the file as UTF-8, and load it "
                            f"again.",
                            f"{name}: UTF-8이 아니어서 인코딩을 {best.encoding}(으)로 짐작했습니다. 글자가 이상하면 인코딩을 "
                            f"고르거나 (--encoding, 또는 페이지의 인코딩) UTF-8로 저장해 다시 불러오세요."))
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


def _korean_or_japanese(data: bytes, name: str) -> Decoded | None:
    """CP949, Shift-JIS or EUC-JP, when one of them reads as plausible text; None when none does.

    CP949 decodes most byte pairs, so "it decodes" proves nothing: Shift-JIS's `店は何時に開きますか` is valid CP949
    (`밲궼돺렄...`). What tells them apart is what comes out: Korean text is almost all common Hangul syllables (the 2,350
    of KS X 1001: 99.99% of KorQuAD's), while Shift-JIS read as CP949 gives rare ones; Japanese text has kana, while
    Korean read as Shift-JIS gives half-width katakana. A clear reading is "likely"; two plausible readings, or a text
    too short to tell, give a "guess" whose warning shows the other reading and how to choose it.
    """
    readings: dict[str, tuple[str, float]] = {}
    for enc, score in (("cp949", _korean_share), ("shift_jis", _japanese_share), ("euc-jp", _japanese_share)):
        try:
            text = data.decode(_CODECS.get(enc, enc))
        except UnicodeDecodeError:
            continue
        readings[enc] = (text, score(text))
    plausible = sorted((e for e, (_, sc) in readings.items() if sc >= 0.5), key=lambda e: -readings[e][1])  # ties: Korean
    if not plausible:
        return None
    best = plausible[0]
    text = readings[best][0]
    others = [e for e in plausible[1:] if _language(e) != _language(best)]
    if len(_letters(text)) < _SHORT:  # a word or two: any reading made only of its language's letters could be it
        others = [e for e, (t, _) in readings.items() if _language(e) != _language(best) and _only_script(t, _language(e))]
    if not others:
        return Decoded(text, best, "likely")
    return Decoded(text, best, "guess", _unclear(name, best, [(e, readings[e][0]) for e in [best, *others[:2]]]))


def _language(encoding: str) -> str:
    return "ko" if encoding == "cp949" else "ja"


def _only_script(text: str, language: str) -> bool:
    """Whether every non-ASCII letter of `text` is Hangul (ko) or kana / kanji (ja)."""
    letters = _letters(text)
    if language == "ko":
        return bool(letters) and _korean_share(text) == 1.0
    return bool(letters) and all("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in letters)


def _unclear(name: str, chosen: str, readings: list[tuple[str, str]]) -> Text:
    """The warning of an unclear guess: each reading with the start of its text, and how to choose another."""
    def shown(text: str) -> str:
        return " ".join(text.split())[:16]

    en = " or ".join(f'{ENCODING_LABELS[e][0]}: "{shown(t)}"' for e, t in readings)
    ko = " 또는 ".join(f'{ENCODING_LABELS[e][1]}: "{shown(t)}"' for e, t in readings)
    other = next((e for e, _ in readings if e != chosen), "cp949")
    return Text(f"{name}: the text encoding is not clear; it reads as {en}. It was read as {ENCODING_LABELS[chosen][0]}. "
                f"If that is wrong, choose the encoding (e.g. --encoding {other}, or Encoding on the page) and load it "
                f"again.",
                f"{name}: 텍스트 인코딩이 분명하지 않습니다. {ko}(으)로 읽힙니다. {ENCODING_LABELS[chosen][1]}(으)로 "
                f"읽었습니다. 틀렸다면 인코딩을 골라 (예: --encoding {other}, 또는 페이지의 인코딩) 다시 불러오세요.")


def _neutral(c: str) -> bool:
    """Punctuation and symbols that Korean, Japanese and Chinese text share (·, “ ”, ※, 、。「」, fullwidth ！？)."""
    return "\u2000" <= c <= "\u2bff" or "\u3000" <= c <= "\u303f" or "\uff01" <= c <= "\uff65" or c in "·×÷\xa0"


def _letters(text: str) -> list[str]:
    return [c for c in text if ord(c) > 127 and not _neutral(c)]


def _korean_share(text: str) -> float:
    """Share of the non-ASCII letters that are common Hangul syllables (KS X 1001's 2,350, two bytes in EUC-KR; CPython's
    EUC-KR writes the others as 8-byte sequences) or jamo (ㅋㅋ, ㅠㅠ)."""
    letters = _letters(text)
    if not letters:
        return 0.0
    common = sum(1 for c in letters if ("\uac00" <= c <= "\ud7a3" and len(c.encode("euc-kr", "replace")) == 2)
                 or "\u3131" <= c <= "\u318e")
    return common / len(letters)


def _japanese_share(text: str) -> float:
    """Share of the non-ASCII letters that are kana or kanji; 0 when under 30% are kana (Japanese prose is mostly
    kana; kanji alone could be Chinese, and Korean ㅋㅋ read as EUC-JP gives a few stray kana)."""
    letters = _letters(text)
    kana = sum(1 for c in letters if "\u3040" <= c <= "\u30ff")
    if not letters or kana < 0.3 * len(letters):
        return 0.0
    return (kana + sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")) / len(letters)


def _decode_as(data: bytes, name: str, encoding: str) -> Decoded:
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else _CODECS.get(encoding, encoding)
    try:
        return Decoded(data.decode(codec), encoding)
    except LookupError as exc:
        raise DocumentError(f"{name}: {encoding!r} is not a text encoding Python knows. Use one of {', '.join(ENCODINGS)}.",
                            ko=f"{name}: {encoding!r}은(는) 파이썬이 아는 텍스트 인코딩이 아닙니다. {', '.join(ENCODINGS)} "
                               f"중 하나를 쓰세요.") from exc
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{name} is not valid {encoding.upper()} text ({exc.reason} at byte {exc.start}). Choose the "
                            f"right encoding (auto detects UTF-8, UTF-16, CP949 and Latin-1), or save the file as UTF-8.",
                            ko=f"{name}은(는) 올바른 {encoding.upper()} 텍스트가 아닙니다 ({exc.start}번째 바이트: "
                               f"{exc.reason}). 맞는 인코딩을 고르거나(auto는 UTF-8, UTF-16, CP949, Latin-1을 "
                               f"알아봅니다) UTF-8로 저장하세요.") from exc
