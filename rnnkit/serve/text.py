"""The text of one choice as it is generated: stop sequences cut it, and what may still
become a stop sequence is held back so a stream never sends text it must take back. Only that
held-back tail is kept: memory per choice does not grow with its length."""
from __future__ import annotations


class ChoiceText:
    """Takes token texts; `add` returns the part that is final, and whether a stop sequence
    ended the choice (the stop sequence itself is not part of the text)."""

    def __init__(self, stop: list[str]):
        self.stop = stop
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.tail = ""  # text not returned yet: shorter than the longest stop sequence

    def add(self, piece: str) -> tuple[str, bool]:
        tail = self.tail + piece
        if self.stop:
            # text returned before was checked when it came: no stop sequence starts there
            hits = [i for i in (tail.find(s) for s in self.stop) if i >= 0]
            if hits:
                self.tail = ""
                return tail[:min(hits)], True
        safe = max(len(tail) - self.hold, 0)
        self.tail = tail[safe:]
        return tail[:safe], False

    def flush(self) -> str:
        """Everything not yet returned (at the end of the choice)."""
        out, self.tail = self.tail, ""
        return out
