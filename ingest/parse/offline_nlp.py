"""Make the `unstructured` partitioners run fully offline.

Two things in `unstructured` reach the network unless told otherwise:

* **Telemetry.** Importing `unstructured` sends an analytics ping, and every
  partition call may send another; a usage notice is logged on first use. The
  library's documented opt-outs are the environment variables
  ``DO_NOT_TRACK`` / ``SCARF_NO_ANALYTICS`` (any non-empty value) and
  ``UNSTRUCTURED_DISABLE_NOTICE=1``. They are read at import and at each call,
  so :func:`ensure_offline` sets them before `unstructured` is first imported.

* **The spaCy model.** Text classification (title vs. narrative text, sentence
  counts) calls `unstructured.nlp.tokenize._get_nlp()`, which loads the
  ``en_core_web_sm`` package and, when it is not installed, downloads and
  installs it from the internet at parse time. That package is not published
  on the package index we install from, and the product must never fetch
  anything while parsing. `unstructured` has no setting to turn the download
  off, so the one loader function it calls, ``_load_spacy_model``, is replaced
  by :func:`load_offline_pipeline`: it still uses ``en_core_web_sm`` when an
  operator has installed it, and otherwise builds a small rule-based English
  pipeline from what spaCy itself ships. Nothing else in `unstructured` is
  changed.

  `unstructured` asks the pipeline for two things: sentence boundaries (a
  sentencizer gives them) and whether a line contains a verb, which is what
  separates a short sentence from a heading. With no trained tagger, an
  attribute ruler tags the closed class of English auxiliary and modal verbs
  ("is", "has", "will", "can", ...), which nearly every statement contains; an
  imperative such as "Ship the release" still reads as a heading, and
  `ingest.parse` keeps a "heading" that ends like a sentence as text.
"""

from __future__ import annotations

import os
import threading
from typing import Final, cast

import spacy
from spacy.language import Language
from spacy.pipeline import AttributeRuler

SPACY_MODEL_NAME: Final[str] = "en_core_web_sm"
# The components `unstructured` itself excludes when it loads the model.
_SPACY_EXCLUDE: Final[list[str]] = ["ner", "lemmatizer", "attribute_ruler"]

# Normalised forms, so contractions count too ("can't" -> "ca" -> "can", "'re" -> "are").
_AUXILIARY_VERBS: Final[tuple[str, ...]] = (
    *("am", "is", "are", "was", "were", "be", "been", "being"),
    *("has", "have", "had", "having", "do", "does", "did"),
    *("will", "would", "shall", "should", "can", "could", "might", "must"),
)
# "may" only in lower case: "May" is more often the month.
_LOWER_CASE_ONLY_AUXILIARY: Final[str] = "may"
# Any Penn Treebank verb tag makes `unstructured` see a verb.
_VERB_TAG: Final[str] = "VB"

_TELEMETRY_OPT_OUT: Final[dict[str, str]] = {
    "DO_NOT_TRACK": "true",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
}

_lock = threading.Lock()
_installed = False


def load_offline_pipeline() -> Language:
    """Return ``en_core_web_sm`` if it is installed, else a rule-based English pipeline.

    Never downloads anything. The fallback splits sentences with a sentencizer and
    tags auxiliary and modal verbs with an attribute ruler; other tokens carry no tag.
    """
    try:
        return spacy.load(SPACY_MODEL_NAME, exclude=_SPACY_EXCLUDE)
    except OSError:
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        ruler = cast(AttributeRuler, nlp.add_pipe("attribute_ruler"))
        ruler.add(
            patterns=[[{"NORM": {"IN": list(_AUXILIARY_VERBS)}}], [{"ORTH": _LOWER_CASE_ONLY_AUXILIARY}]],
            attrs={"TAG": _VERB_TAG},
        )
        return nlp


def ensure_offline() -> None:
    """Switch telemetry off and install the offline spaCy loader. Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        os.environ.update(_TELEMETRY_OPT_OUT)
        # Imported only now, after the opt-out variables are set.
        from unstructured.nlp import tokenize

        tokenize._load_spacy_model = load_offline_pipeline
        _installed = True
