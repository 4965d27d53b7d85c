"""The labelled redaction corpus (corpus.txt) and per-entity precision / recall over it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from vibekit_telemetry.privacy.redactor import Redactor, build_rules

CORPUS = Path(__file__).with_name("corpus.txt")
MARK = re.compile(r"\{\{(\w+):(.*?)\}\}", re.S)
# Which labelled entity type each built-in detector reports.
ENTITY = {"email": "email", "phone": "phone", "ssn": "ssn", "credit_card": "credit_card", "iban": "iban",
          "ipv4": "ip", "ipv6": "ip", "jwt": "jwt", "private_key": "private_key", "url_password": "password",
          "assigned_secret": "password", "high_entropy": "secret", "anthropic_key": "api_key",
          "openai_key": "api_key", "aws_access_key": "api_key", "aws_secret_key": "api_key",
          "github_token": "api_key", "slack_token": "api_key", "slack_webhook": "api_key", "stripe_key": "api_key",
          "google_api_key": "api_key"}


@dataclass
class Example:
    """One corpus line: the plain text and its labelled (start, end, type) spans."""

    text: str
    labels: list[tuple[int, int, str]] = field(default_factory=list)


def load() -> list[Example]:
    """Parse corpus.txt into examples."""
    out = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        line = line.replace("\\n", "\n")
        example, pos, text = Example(""), 0, []
        length = 0
        for match in MARK.finditer(line):
            plain = line[pos:match.start()]
            text.append(plain)
            length += len(plain)
            value = match.group(2)
            example.labels.append((length, length + len(value), match.group(1)))
            text.append(value)
            length += len(value)
            pos = match.end()
        text.append(line[pos:])
        example.text = "".join(text)
        out.append(example)
    return out


@dataclass
class Score:
    """Counts for one entity type."""

    labelled: int = 0
    found: int = 0  # labelled values the redactor covered
    predicted: int = 0
    correct: int = 0  # predicted spans that overlap a labelled value

    @property
    def recall(self) -> float:
        """Share of labelled values redacted."""
        return self.found / self.labelled if self.labelled else 1.0

    @property
    def precision(self) -> float:
        """Share of redactions that hit a labelled value."""
        return self.correct / self.predicted if self.predicted else 1.0


def evaluate(redactor: Redactor | None = None) -> dict[str, Score]:
    """Return per-entity scores, plus 'overall'."""
    redactor = redactor or Redactor(build_rules())
    scores: dict[str, Score] = {}
    for example in load():
        spans = redactor.spans(example.text)
        for start, end, kind in example.labels:
            score = scores.setdefault(kind, Score())
            score.labelled += 1
            # Found: a redaction overlaps it and none of its text is left in the output.
            if any(s < end and start < e for s, e, _ in spans) and \
                    example.text[start:end] not in redactor.redact_text(example.text):
                score.found += 1
        for s, e, detector in spans:
            score = scores.setdefault(ENTITY.get(detector.name, detector.name), Score())
            score.predicted += 1
            if any(s < end and start < e for start, end, _ in example.labels):
                score.correct += 1
    overall = Score()
    for score in scores.values():
        overall.labelled += score.labelled
        overall.found += score.found
        overall.predicted += score.predicted
        overall.correct += score.correct
    scores["overall"] = overall
    return scores


def table(scores: dict[str, Score]) -> str:
    """Return the scores as a Markdown table (the README's)."""
    rows = ["| entity | labelled | precision | recall |", "| --- | ---: | ---: | ---: |"]
    for name, score in sorted(scores.items(), key=lambda kv: (kv[0] == "overall", kv[0])):
        rows.append(f"| {name} | {score.labelled} | {score.precision:.2f} | {score.recall:.2f} |")
    return "\n".join(rows)
