"""Chinese inverse text normalization: spoken numbers to digits (一百二十三 -> 123, 百分之五 -> 5%, 三点五 -> 3.5).

Conservative on purpose: a numeral run converts only when it reads as a number and cannot be a word. A lone
numeral (一起, 十分), a run that starts with a unit (万一, 千万), and 一点 without digits after it stay as
they are. Runs of three or more plain digits (二零二四) convert digit by digit.
"""

from __future__ import annotations

import re

DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
UNITS = {"十": 10, "百": 100, "千": 1000}
BIG_UNITS = {"万": 10_000, "亿": 100_000_000}
_NUM = "".join(DIGITS) + "".join(UNITS) + "".join(BIG_UNITS)
_RUN = re.compile(rf"(百分之)?([{_NUM}]+)(点([{''.join(DIGITS)}]+))?")


def parse_integer(run: str) -> int | None:
    """The value of a Chinese integer numeral, or None if `run` is not a well-formed number."""
    if not run or run[0] in BIG_UNITS or (run[0] in UNITS and run[0] != "十"):
        return None
    if all(c in DIGITS for c in run):
        return int("".join(str(DIGITS[c]) for c in run)) if len(run) > 1 else DIGITS[run]
    total = section = digit = 0
    last_unit = 10**12
    for c in run:
        if c in DIGITS:
            digit = DIGITS[c]
        elif c in UNITS:
            unit = UNITS[c]
            section += (digit or (1 if c == "十" else 0)) * unit
            if unit >= last_unit and section > unit * 9:
                return None
            last_unit, digit = unit, 0
        else:
            section += digit
            total += section * BIG_UNITS[c]
            section = digit = 0
            last_unit = 10**12
    return total + section + digit


def _convert(match: re.Match) -> str:
    percent, run, _, decimals = match.groups()
    text = match.group(0)
    if len(run) == 1 and not percent and not decimals:
        return text  # a lone numeral is usually a word (一起, 十分)
    value = parse_integer(run)
    if value is None:
        return text
    if all(c in DIGITS for c in run) and len(run) == 2 and not percent and not decimals:
        return text  # 一二, 三四: more often a phrase than a number
    number = "".join(str(DIGITS[c]) for c in run) if all(c in DIGITS for c in run) else str(value)
    if decimals:
        number += "." + "".join(str(DIGITS[c]) for c in decimals)
    return number + "%" if percent else number


def chinese_itn(text: str) -> str:
    return _RUN.sub(_convert, text)
