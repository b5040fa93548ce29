"""read_shape_names: how shape_names.txt files written by other tools are read."""
from __future__ import annotations

import pytest

from pointcalip.datasets.modelnet import read_shape_names

NAMES = ["airplane", "bathtub", "flower_pot", "night_stand"]


@pytest.mark.parametrize("raw", [
    b"\xef\xbb\xbfairplane\nbathtub\nflower_pot\nnight_stand\n",  # UTF-8 byte-order mark
    b"airplane\r\nbathtub\r\nflower_pot\r\nnight_stand\r\n",  # Windows line ends
    b"airplane\rbathtub\rflower_pot\rnight_stand",  # old Mac line ends, no final line end
    b"airplane  \nbathtub\t\n\tflower_pot \t\nnight_stand \n",  # spaces and tabs around
    b"\n\nairplane\n\nbathtub\n   \n\t\nflower_pot\nnight_stand\n\n\n",  # blank lines
    b"\xef\xbb\xbf  airplane \r\n\r\nbathtub\t\r\nflower_pot\r\n night_stand\r\n\r\n",  # all
], ids=["bom", "crlf", "cr", "spaces-tabs", "blank-lines", "all"])
def test_harmless_formatting_is_ignored(tmp_path, raw):
    (tmp_path / "shape_names.txt").write_bytes(raw)
    assert read_shape_names(tmp_path) == NAMES


def test_inner_single_space_is_kept(tmp_path):
    (tmp_path / "shape_names.txt").write_text("night stand\nsofa\n")
    assert read_shape_names(tmp_path) == ["night stand", "sofa"]


@pytest.mark.parametrize("name, what", [
    ("night\tstand", r"U\+0009 \(a control character\)"),
    ("night\u00a0stand", r"U\+00A0 \(NO-BREAK SPACE\)"),
    ("night\u2003stand", r"U\+2003 \(EM SPACE\)"),
    ("night  stand", r"two spaces in a row"),
    ("night\x00stand", r"U\+0000 \(a control character\)"),
    ("night\x0cstand", r"U\+000C \(a control character\)"),  # str.splitlines would split here
    ("night_stand\x1b", r"U\+001B \(a control character\)"),
    ("\u2028night_stand", r"U\+2028 \(LINE SEPARATOR\)"),
])
def test_odd_characters_in_a_name_are_errors(tmp_path, name, what):
    (tmp_path / "shape_names.txt").write_text(f"airplane\r\n\r\n{name}\r\nsofa\r\n",
                                              encoding="utf-8", newline="")
    with pytest.raises(ValueError, match=r"shape_names\.txt line 3: class name .* contains "
                       + what + r"; write one class name a line"):
        read_shape_names(tmp_path)


def test_duplicate_name_names_both_lines(tmp_path):
    (tmp_path / "shape_names.txt").write_text("chair\nsofa\n\nchair \n")
    with pytest.raises(ValueError, match=r"shape_names\.txt lists 'chair' twice \(lines 1 and "
                       r"4\)"):
        read_shape_names(tmp_path)


def test_not_utf8(tmp_path):
    (tmp_path / "shape_names.txt").write_bytes("chair\nsof\u00e4\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"shape_names\.txt is not UTF-8 text .*; save it as "
                       r"UTF-8"):
        read_shape_names(tmp_path)


@pytest.mark.parametrize("first, second, word", [
    ("night_stand", "night stand", "night stand"), ("Sofa", "sofa", "sofa"),
])
def test_names_that_give_one_prompt_are_duplicates(tmp_path, first, second, word):
    """The list is checked as CLIP will read it, when the dataset is opened (before CLIP)."""
    (tmp_path / "shape_names.txt").write_text(f"{first}\nchair\n{second}\n")
    path = tmp_path / "shape_names.txt"
    with pytest.raises(ValueError) as err:
        read_shape_names(tmp_path)
    assert str(err.value) == (
        f"{path}: class names {first!r} and {second!r} are the same class to CLIP: both become "
        f"the prompt word {word!r} ('_' reads as a space; case and extra spaces are ignored), so "
        f"they would get the same probability; keep one")


def test_empty_file_still_reads_as_no_names(tmp_path):
    (tmp_path / "shape_names.txt").write_text("\n")
    assert read_shape_names(tmp_path) == []
