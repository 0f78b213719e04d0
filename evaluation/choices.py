"""Which option of a multiple-choice question a free-text answer picks.

Models answer "(B)", "B.", "The answer is b", the option text alone, or hedge with two
letters. The rules, in order (the first that decides wins):
1. the whole answer is one letter form: `B`, `(B)`, `B.`, `b)`, `B:`;
2. an explicit statement: "answer is B", "option (c)", "choice: D";
3. a leading letter form followed by text: `(B) rotated left`, `C. the chair`;
4. the option text: exactly one option's text appears as whole words (an option contained in
   a longer matching option, e.g. "left" in "rotated left", yields to the longer one);
5. exactly one standalone capital letter among the options' letters (an article "A" before a
   lower-case word does not count).
Anything else — no option, or two different ones ("A or B") — is no choice (None).
"""

from __future__ import annotations

import re
import string

LETTERS = string.ascii_uppercase

_WHOLE = re.compile(r"^\(?([A-Za-z])\s*[\).:]?$")
_STATED = re.compile(r"\b(?:answer|option|choice)\s*(?:is|would be|:)?\s*[:\-]?\s*\(?([A-Za-z])\b(?![\w'])", re.I)
_LEADING = re.compile(r"^\(?([A-Z])[\).:]\s+")
_STANDALONE = re.compile(r"(?<![\w'])\(?([A-Z])\)?(?![\w'])")


# Words after a bare "A" that show it is an option letter, not an article.
_NOT_NOUNS = {"or", "and", "nor", "is", "was", "seems", "appears", "because", "since", "then"}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())


def _letter_index(letter: str, n: int) -> int | None:
    i = LETTERS.find(letter.upper())
    return i if 0 <= i < n else None


def _is_article(text: str, m: re.Match) -> bool:
    """ "a" or "A" used as an article: not in parentheses and followed by a lower-case word."""
    nxt = re.match(r"\s+([a-z]+)", text[m.end() :])
    return m.group(1) in "aA" and "(" not in m.group(0) and nxt is not None and nxt.group(1) not in _NOT_NOUNS


def _letters_mentioned(text: str, n: int) -> set[int]:
    """Standalone capital letters of valid options, ignoring the article "A word"."""
    found = set()
    for m in _STANDALONE.finditer(text):
        if _is_article(text, m):
            continue
        i = _letter_index(m.group(1), n)
        if i is not None:
            found.add(i)
    return found


def _by_text(text: str, choices: list[str]) -> set[int]:
    answer = f" {_norm(text)} "
    hits = {i for i, c in enumerate(choices) if _norm(c) and f" {_norm(c)} " in answer}
    # An option contained in a longer matching option is not a separate pick.
    return {
        i
        for i in hits
        if not any(
            j != i and f" {_norm(choices[i])} " in f" {_norm(choices[j])} " and _norm(choices[i]) != _norm(choices[j])
            for j in hits
        )
    }


def extract_choice(answer: str | None, choices: list[str], *, by_letter: bool = True) -> int | None:
    """The index of the option `answer` picks, or None when it picks none or several.
    `by_letter=False` (options shown as text, without letters) reads the option text only (rule 4).

    >>> extract_choice("The answer is b", ["left", "right"])
    1
    >>> extract_choice("A or B", ["left", "right"]) is None
    True
    """
    if answer is None or not choices:
        return None
    text = str(answer).strip()
    n = len(choices)
    if not by_letter:
        picked = _by_text(text, choices)
        return picked.pop() if len(picked) == 1 else None
    m = _WHOLE.match(text)
    if m:
        return _letter_index(m.group(1), n)
    stated = {
        i
        for i in (_letter_index(m.group(1), n) for m in _STATED.finditer(text) if not _is_article(text, m))
        if i is not None
    }
    if len(stated) == 1:
        others = _letters_mentioned(text, n) - stated
        return None if others else stated.pop()
    if len(stated) > 1:
        return None
    m = _LEADING.match(text)
    if m and _letter_index(m.group(1), n) is not None:
        return _letter_index(m.group(1), n)
    by_text = _by_text(text, choices)
    if len(by_text) == 1:
        return by_text.pop()
    if by_text:
        return None
    letters = _letters_mentioned(text, n)
    return letters.pop() if len(letters) == 1 else None
