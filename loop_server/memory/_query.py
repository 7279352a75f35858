"""A user's question as FTS5 query terms (pure text processing).

Words are quoted one by one and joined with ``OR``, so any word may match and BM25 rewards the
chunks that match more (and rarer) words; quoting also means no user text is ever read as FTS5
syntax. Each quoted word still goes through the table's tokenizer, so the Porter stemmer maps
"running" and "runs" to "run" on both sides. Very common English words are dropped (unless the
question has nothing else): they carry no relevance and would make the query match nearly every
chunk. (Words that are common in one corpus only are handled by ``_lexical``.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_TERMS = 32
# Letters and digits only: the unicode61 tokenizer splits on everything else, "_" included.
_WORD = re.compile(r"[^\W_]+")
_STOPWORD_TEXT = """
    a about above after again all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not of off on once only or other our ours out over own same she should so
    some such than that the their theirs them then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would
    you your yours
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def query_terms(question: str) -> list[str]:
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(question)))
    meaningful = [word for word in words if word not in STOPWORDS]
    return (meaningful or words)[:MAX_TERMS]


def any_of(terms: Sequence[str]) -> str:
    """The MATCH expression for chunks holding any of ``terms``."""
    return " OR ".join(_quoted(term) for term in terms)


def all_of(terms: Sequence[str]) -> str:
    """The MATCH expression for chunks holding every one of ``terms``."""
    return " AND ".join(_quoted(term) for term in terms)


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def fts_match(question: str) -> str | None:
    """The MATCH expression for ``question``; ``None`` when it has no words at all."""
    terms = query_terms(question)
    return any_of(terms) if terms else None
