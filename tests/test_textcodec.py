"""One encoding detector for every file (workbench.common.textcodec)."""

from __future__ import annotations

import random

import pytest

from workbench.common.errors import DocumentError
from workbench.common.textcodec import decode, decode_text

KO = "현금으로 결제가 가능한가요? 네, 카드와 현금 모두 받습니다.\n주차는 두 시간 무료입니다."


@pytest.mark.parametrize("encoding,expected", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("cp949", "cp949"),
                                               ("euc-kr", "cp949"), ("utf-16", "utf-16")])
def test_text_encodings_are_detected(encoding, expected):
    text, used = decode_text(KO.encode(encoding), "faq.txt")
    assert text == KO and used == expected


def test_cp949_only_syllables_decode_as_cp949():
    # "똠" and "햏" exist in CP949 but not in EUC-KR's 2,350 syllables.
    text, used = decode_text("똠방각하 햏".encode("cp949"))
    assert (text, used) == ("똠방각하 햏", "cp949")


def test_binary_and_undecodable_files_are_clear_errors():
    with pytest.raises(DocumentError, match=r"logo\.txt: looks like a binary file"):
        decode_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100), "logo.txt")
    noise = bytes(b for b in random.Random(0).randbytes(3000) if b)
    with pytest.raises(DocumentError, match=r"noise\.txt: cannot tell its text encoding .* Save it as UTF-8"):
        decode_text(noise, "noise.txt")


def test_a_chosen_encoding_is_used_strictly():
    assert decode_text("\ufeffQ,A\n".encode("utf-8"), "qa.csv", encoding="utf-8") == ("Q,A\n", "utf-8")
    assert decode_text("현금".encode("cp949"), "qa.csv", encoding="cp949") == ("현금", "cp949")
    with pytest.raises(DocumentError, match=r"qa\.csv is not valid UTF-8 text .*auto detects UTF-8, UTF-16, CP949 and Latin-1"):
        decode_text("현금".encode("cp949"), "qa.csv", encoding="utf-8")
    with pytest.raises(DocumentError, match="not a text encoding Python knows"):
        decode_text(b"x", "qa.csv", encoding="klingon")


WESTERN = "Café crème brûlée naïve"


@pytest.mark.parametrize("text,encoding,expected", [
    (WESTERN, "latin-1", "latin-1"),
    (WESTERN + " – “le menu” coûte 5 €", "cp1252", "cp1252"),  # cp1252's dash, quotes, euro
    ("Die Straße über Köln, à la française.\n", "latin-1", "latin-1"),
])
def test_western_text_decodes_as_latin1_or_cp1252_not_cp1250(text, encoding, expected):
    # charset-normalizer alone read the Latin-1 file as cp1250: "crčme brűlée naďve".
    d = decode(text.encode(encoding), "menu.txt")
    assert (d.text, d.encoding, d.confidence, d.warning) == (text, expected, "likely", "")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("text", ["Hello, plain ASCII in UTF-16.\n", KO, WESTERN + "\n"])
def test_utf16_without_bom_is_told_by_its_nul_pattern(codec, text):
    d = decode(text.encode(codec), "export.txt")
    assert (d.text, d.encoding) == (text, codec)


def test_binary_with_nuls_on_both_sides_is_still_binary_and_says_utf16_is_not_it():
    noise = random.Random(1).randbytes(4000)
    with pytest.raises(DocumentError, match=r"x\.txt: looks like a binary file, not text .*not UTF-16 text either"):
        decode(noise, "x.txt")


def test_utf8_wins_and_is_certain_and_a_guess_carries_a_warning(caplog):
    assert decode(WESTERN.encode("utf-8")) == decode(WESTERN.encode("utf-8"), "menu.txt")
    assert decode(WESTERN.encode("utf-8")).confidence == "certain"
    greek = "Καλημέρα κόσμε, αυτό είναι ένα ελληνικό κείμενο για δοκιμή.".encode("cp1253")
    with caplog.at_level("WARNING", logger="workbench.common.textcodec"):
        d = decode(greek, "greek.txt")
    assert d.confidence == "guess" and d.warning.startswith("greek.txt: not UTF-8; its encoding was guessed as ")
    assert d.warning in caplog.text


def test_a_bom_with_broken_text_after_it_is_a_document_error():
    with pytest.raises(DocumentError, match=r"bad\.txt: starts with a UTF-8 byte-order mark but is not valid UTF-8"):
        decode_text(b"\xef\xbb\xbfabc\xff", "bad.txt")


# --- Korean or Japanese (issue #23) -------------------------------------------------------------------------------


def test_short_shift_jis_text_is_japanese_not_hangul_mojibake():
    """`店は何時に開きますか` in Shift-JIS is valid CP949 too (`밲궼돺렄…`); it was stored as that, with only a note."""
    d = decode("店は何時に開きますか".encode("cp932"), "hours.txt")
    assert (d.text, d.encoding, d.confidence, d.warning) == ("店は何時に開きますか", "shift_jis", "likely", "")
    d = decode("店は何時に開きますか？午前九時から営業しています。".encode("euc_jp"), "hours.txt")
    assert (d.text[:10], d.encoding) == ("店は何時に開きますか", "euc-jp")


@pytest.mark.parametrize("text", [KO, "ㅋㅋㅋ 현금으로 결제 돼요? ㅎㅎ 네 됩니다", "대한민국(大韓民國)의 수도는 서울(首爾)이다."])
def test_korean_stays_korean_and_certain_enough_to_keep_quiet(text):
    d = decode(text.encode("cp949"), "faq.txt")
    assert (d.text, d.encoding, d.confidence, d.warning) == (text, "cp949", "likely", "")


def test_an_unclear_guess_is_a_warning_with_both_readings_and_how_to_choose(caplog):
    with caplog.at_level("WARNING", logger="workbench.common.textcodec"):
        d = decode("東京都です".encode("euc_jp"), "tokyo.txt")  # EUC-JP kanji are CP949 Hangul byte for byte
    assert d.confidence == "guess" and d.encoding == "cp949"
    assert d.warning == ('tokyo.txt: the text encoding is not clear; it reads as Korean (CP949 / EUC-KR): "톺딸텃ㅗㅉ" or '
                         'Japanese (EUC-JP): "東京都です". It was read as Korean (CP949 / EUC-KR). If that is wrong, choose '
                         'the encoding (e.g. --encoding euc-jp, or Encoding on the page) and load it again.')
    assert d.warning.ko.startswith("tokyo.txt: 텍스트 인코딩이 분명하지 않습니다. 한국어 (CP949 / EUC-KR)")
    assert d.warning in caplog.text
    short = decode("현금".encode("cp949"), "pay.txt")  # two letters: too little to be sure
    assert (short.text, short.confidence) == ("현금", "guess") and '일본어 (EUC-JP): "薄榎"' in short.warning.ko


def test_a_chosen_cjk_encoding_is_used():
    assert decode_text("東京都です".encode("euc_jp"), "tokyo.txt", encoding="euc-jp") == ("東京都です", "euc-jp")
    # Shift-JIS as Windows writes it (cp932): ① is not in plain Shift-JIS
    assert decode_text("①店は".encode("cp932"), "a.txt", encoding="shift_jis") == ("①店は", "shift_jis")
    assert decode_text("商店几点开门".encode("gb18030"), "a.txt", encoding="gb18030") == ("商店几点开门", "gb18030")
