"""Cost of the redact step per event, and of encryption at rest per event, beside their peers.

Workload: realistic agent events (a prompt with an email, a card and a key in 1 of 4; code; log
lines; a nested metadata dict), built once. Measured in one process, interleaved in rounds:

- `redact` — the chain's redact step with every built-in detector, µs per event;
- peer `re_email` — one compiled email regex `sub` over the same text fields (the seed's PII
  detector minimum), so the ratio says what the full detector set costs over the simplest one;
- `encrypt` — AES-256-GCM of label, stream data and metadata (StoreEncryption.encrypt_batch);
- peer `json_encode` — json.dumps of the same metadata (the Encode step's own work per event).

Also prints the corpus precision / recall table (tests/privacy/corpus.txt), for the README.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from time import perf_counter_ns

from _util import emit, machine, ratio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "privacy"))

PROMPTS = [
    "Refund ann.lee@example.org on card 4111 1111 1111 1111 with key sk-proj-Xk3Lm9Qp2Rt7Vw1Yz4Ab6Cd8Ef0Gh2Ij4",
    "Refactor src/app/handlers.py so the retry loop backs off exponentially and add tests for it.",
    "2024-05-01T10:22:02Z WARN request id=7f3c2a1b path=/api/events status=500 latency_ms=1200 retrying",
    "def connect(url: str) -> Connection:\n    return psycopg.connect(url, autocommit=True)  # pooled elsewhere",
]


def _events(n: int) -> list:
    from vibekit_telemetry.events import TelemetryEvent

    out = []
    for i in range(n):
        text = PROMPTS[i % len(PROMPTS)]
        out.append(TelemetryEvent("start" if i % 10 == 0 else "stream", "claude", session_id=f"s{i // 10}",
                                  action="code", label=text if i % 10 == 0 else None,
                                  stream_data=None if i % 10 == 0 else text,
                                  metadata={"model": "claude-x", "tokens": i, "tool": {"name": "edit", "path": "a.py"}},
                                  event_id=f"e{i}", timestamp=1_700_000_000_000 + i))
    return out


def main() -> None:
    """Run the benchmark and print its JSON line and summary."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import json

    from vibekit_telemetry.privacy.redactor import build_rules
    from vibekit_telemetry.processing.redact import Redact

    base = _events(args.events)
    step = Redact(build_rules(), hold_stream_tails=False)
    email = re.compile(r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}")
    encryption = None
    try:
        from vibekit_telemetry.privacy.crypto import StoreEncryption

        encryption = StoreEncryption(key="ab" * 32)
        encryption.open(None)
    except Exception as exc:  # the crypto extra is missing
        print(f"encryption skipped: {exc}", file=sys.stderr)
    for e in base:
        e.metadata_json = json.dumps(e.metadata)
    best: dict[str, float] = {}

    def timed(name: str, run) -> None:
        work = copy.deepcopy(base)
        started = perf_counter_ns()
        run(work)
        per_event_us = (perf_counter_ns() - started) / len(work) / 1000
        best[name] = min(best.get(name, float("inf")), per_event_us)

    def redact_all(events: list) -> None:
        for e in events:
            step.process(e)

    def email_only(events: list) -> None:
        for e in events:
            if e.label:
                e.label = email.sub("[REDACTED_EMAIL]", e.label)
            if e.stream_data:
                e.stream_data = email.sub("[REDACTED_EMAIL]", e.stream_data)

    def json_encode(events: list) -> None:
        for e in events:
            e.metadata_json = json.dumps(e.metadata)

    for _ in range(args.rounds):
        timed("redact", redact_all)
        timed("re_email", email_only)
        timed("json_encode", json_encode)
        if encryption is not None:
            timed("encrypt", encryption.encrypt_batch)
    from _privacy_corpus import evaluate, table

    scores = evaluate()
    results = {"machine": machine(), "events": args.events, "us_per_event": best,
               "redact_over_re_email": ratio(best["redact"], best["re_email"]),
               "corpus": {k: {"precision": v.precision, "recall": v.recall, "labelled": v.labelled}
                          for k, v in scores.items()}}
    if "encrypt" in best:
        results["encrypt_over_json_encode"] = ratio(best["encrypt"], best["json_encode"])
    summary = [f"{name:12s} {us:8.2f} µs/event" for name, us in best.items()]
    summary.append(f"redact / one email regex: {results['redact_over_re_email']:.1f}x")
    summary.append(table(scores))
    emit("redact", results, summary)


if __name__ == "__main__":
    main()
