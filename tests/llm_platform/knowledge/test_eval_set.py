"""The evaluation set is what the knowledge base's quality is measured by: these checks keep it
well-formed (every question has exactly one answering document; a rare term is in its document and no
other; questions paraphrase rather than copy). Pure data checks: no process, no database."""

from __future__ import annotations

import re
from collections import Counter

from tests.llm_platform.knowledge.eval_set import PARAPHRASE, RARE_TERM, load_eval_set

EVAL = load_eval_set()
COPIED_WORDS = 5  # a question sharing this many consecutive words with its document copies it


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.lower())


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_forty_short_documents_with_distinct_titles() -> None:
    assert len(EVAL.documents) == 40
    titles = [document.title for document in EVAL.documents]
    assert len(set(titles)) == len(titles), [t for t, n in Counter(titles).items() if n > 1]
    lengths = {document.title: len(document.text.split()) for document in EVAL.documents}
    assert all(80 <= words <= 200 for words in lengths.values()), lengths


def test_fifty_questions_each_answered_by_an_existing_document() -> None:
    titles = {document.title for document in EVAL.documents}
    assert len(EVAL.questions) == 50
    assert {question.document for question in EVAL.questions} <= titles
    assert len({question.question for question in EVAL.questions}) == 50
    assert all(question.answer for question in EVAL.questions)


def test_every_document_has_one_paraphrase_question() -> None:
    paraphrases = [question for question in EVAL.questions if question.kind == PARAPHRASE]
    assert len(paraphrases) == 40
    assert Counter(question.document for question in paraphrases) == Counter(
        document.title for document in EVAL.documents
    )


def test_each_rare_term_is_in_its_question_and_its_document_only() -> None:
    rare = [question for question in EVAL.questions if question.kind == RARE_TERM]
    assert len(rare) == 10
    assert {question.kind for question in EVAL.questions} == {PARAPHRASE, RARE_TERM}
    assert all(question.term is None for question in EVAL.questions if question.kind == PARAPHRASE)
    for question in rare:
        assert question.term and question.term in question.question, question
        holders = [d.title for d in EVAL.documents if question.term.lower() in d.text.lower()]
        assert holders == [question.document], (question.term, holders)
    terms = [question.term for question in rare]
    assert len(set(terms)) == len(terms)


def test_questions_paraphrase_their_documents() -> None:
    texts = {document.title: document.text for document in EVAL.documents}
    for question in EVAL.questions:
        copied = _ngrams(question.question, COPIED_WORDS) & _ngrams(texts[question.document], COPIED_WORDS)
        assert not copied, (question.question, copied)
