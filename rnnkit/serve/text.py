"""The text of one choice as it is generated: stop sequences cut it, and what may still
become a stop sequence is held back so a stream never sends text it must take back."""
from __future__ import annotations


class ChoiceText:
    """Accumulates token texts; `add` returns the part that is final, and whether a stop
    sequence ended the choice (the stop sequence itself is not part of the text)."""

    def __init__(self, stop: list[str]):
        self.stop = stop
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.text, self.sent = "", 0

    def add(self, piece: str) -> tuple[str, bool]:
        self.text += piece
        # text before `sent` was checked when it was added: no stop sequence starts there
        hits = [i for i in (self.text.find(s, self.sent) for s in self.stop) if i >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            return self.flush(), True
        safe = len(self.text) - self.hold
        if safe <= self.sent:
            return "", False
        out, self.sent = self.text[self.sent:safe], safe
        return out, False

    def flush(self) -> str:
        """Everything not yet returned (at the end of the choice)."""
        out, self.sent = self.text[self.sent:], len(self.text)
        return out
