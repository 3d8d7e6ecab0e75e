"""The content policy: input, passage and output rules from a documented policy file.

``engine`` applies a loaded policy (one trail of decisions per question),
``loader`` reads the file (``default.toml`` ships with the package), ``pii``
detects personal data, ``passages`` and ``output`` hold the stage checks and
``logs`` keeps personal data out of log records. This module itself imports
only the decision records, so :mod:`retrieval.records` can use them.
"""

from retrieval.policy.decisions import Action, PolicyDecision, Stage

__all__ = ["Action", "PolicyDecision", "Stage"]
