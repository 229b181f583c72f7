"""What the tests that train a streaming run for a few steps share: the options and a corpus."""
import random

#: A streaming LM small enough to train 10 steps in a second.
STREAM = ["--hidden", "24", "--embedding", "8", "--batch-size", "4", "--seq-len", "16", "--log-every", "5",
          "--eval-every", "5", "--progress", "none"]


def corpus_text() -> str:
    """~12,000 characters of made-up lines, each starting "ROMEO: " (no shared data needed)."""
    rng = random.Random(0)
    words = ["the", "king", "and", "queen", "of", "a", "fair", "land", "said", "to", "thee", "my", "lord"]
    return "\n".join("ROMEO: " + " ".join(rng.choice(words) for _ in range(9)) for _ in range(200))
