"""The reference notes' runtime claims, and how a measurement confirms or refutes them.

The notes: "Runtime of training LSTM twice slower x2 GRU or x10 Dense of same
size. Training time CNN ~ Dense due to hw acceleration." Each claim is a ratio
of training time per step (same batch, same width, same sequence length). A
claim is *confirmed* when the measured ratio lies within a factor `TOLERANCE`
of the claimed one (for "LSTM ≈ 2× GRU": between 1.33 and 3.0), else *refuted*.
"""
from __future__ import annotations

from dataclasses import dataclass

#: A measured ratio within [claimed / TOLERANCE, claimed * TOLERANCE] confirms a claim.
TOLERANCE = 1.5


@dataclass(frozen=True)
class Claim:
    text: str
    slower: str  # candidate whose time per step is the numerator
    faster: str  # ... and the denominator
    factor: float  # claimed time ratio slower / faster

    def verdict(self, times: dict[str, float], seq_len: int) -> dict | None:
        """The verdict row from ``times`` (ms per step by candidate); None if a candidate is missing."""
        if self.slower not in times or self.faster not in times:
            return None
        ratio = times[self.slower] / times[self.faster]
        low, high = self.factor / TOLERANCE, self.factor * TOLERANCE
        return {
            "claim": self.text,
            "seq_len": seq_len,
            "numerator": self.slower,
            "denominator": self.faster,
            "claimed_ratio": self.factor,
            "ratio": round(ratio, 3),
            "tolerance": [round(low, 3), round(high, 3)],
            "verdict": "confirmed" if low <= ratio <= high else "refuted",
        }


CLAIMS = (
    Claim("LSTM ≈ 2× GRU", "lstm", "gru", 2.0),
    Claim("LSTM ≈ 10× Dense", "lstm", "dense", 10.0),
    Claim("CNN ≈ Dense", "conv1d", "dense", 1.0),
)


def verdicts(results: list[dict]) -> tuple[list[dict], list[str]]:
    """One verdict per claim and sequence length, and a note for each claim that could not be judged."""
    rows = []
    for seq_len in sorted({r["seq_len"] for r in results}):
        times = {r["cell"]: r["ms_per_step"] for r in results if r["seq_len"] == seq_len}
        rows += [row for claim in CLAIMS if (row := claim.verdict(times, seq_len)) is not None]
    judged = {row["claim"] for row in rows}
    missing = [f"{c.text}: not judged, needs cells {c.slower} and {c.faster}" for c in CLAIMS if c.text not in judged]
    return rows, missing
