"""The emotion label order, FER2013's, used by every model file and message."""

from typing import Final

#: FER2013's index order. Alphabetical folder order differs, so code names this order explicitly.
EMOTIONS: Final[tuple[str, ...]] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)
NUM_EMOTIONS: Final[int] = len(EMOTIONS)
