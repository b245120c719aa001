"""The knowledge base's evaluation set (issue 14, "Quality"): 40 short documents on made-up topics and
50 questions, each answered by exactly one document. 40 are paraphrases of what a document says; 10 hinge
on a rare exact term (a part number, a code name) that the question repeats and only its document holds.

The data lives beside this module (`eval/documents.jsonl`, `eval/questions.jsonl`): a document is
`{"title", "text"}`; a question is `{"question", "document" (its document's title), "kind" ("paraphrase"
or "rare_term"), "term" (rare_term only), "answer" (a short expected answer, for grounded-chat checks)}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

EVAL_DIR = Path(__file__).parent / "eval"
PARAPHRASE = "paraphrase"
RARE_TERM = "rare_term"


@dataclass(frozen=True)
class EvalDocument:
    title: str
    text: str


@dataclass(frozen=True)
class EvalQuestion:
    question: str
    document: str
    kind: str
    answer: str
    term: str | None = None


@dataclass(frozen=True)
class EvalSet:
    documents: list[EvalDocument]
    questions: list[EvalQuestion]


def _rows(name: str) -> list[dict]:
    lines = (EVAL_DIR / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load_eval_set() -> EvalSet:
    return EvalSet(
        documents=[EvalDocument(**row) for row in _rows("documents.jsonl")],
        questions=[EvalQuestion(**row) for row in _rows("questions.jsonl")],
    )


def recall(hits: list[bool]) -> float:
    """The share of questions whose document was among the results."""
    return round(sum(hits) / len(hits), 3)
