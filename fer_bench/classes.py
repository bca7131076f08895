"""Expression names: one canonical spelling per expression, so report rows read alike."""

from __future__ import annotations

# The seven FER2013 expressions, in the label-id order of the original CSV.
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# The paper's five expressions (Anger, Sad, Happy, Afraid, Calm) in canonical spelling.
PAPER5_CLASSES = ("angry", "sad", "happy", "fear", "neutral")

SYNONYMS = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "contempt": "contempt",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "smile": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "calm": "neutral",
    "neutrality": "neutral",
}


def canonical(name: str) -> str:
    """Canonical name of an expression; an unknown name keeps its own spelling."""
    return SYNONYMS.get(name.strip().lower(), name.strip())


def canonical_list(names) -> list[str]:
    out = [canonical(str(n)) for n in names]
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        from fer_bench.data.errors import DataError

        raise DataError(f"data.classes names the same expression twice: {dupes} (after "
                        "synonyms); name each once")
    return out
