"""The evaluation harness behind ``clearance eval``.

An evaluation set (:mod:`.items`) is asked through the product's own path
(:mod:`.runner`: development tokens, the configured token validator, the
answer service), scored (:mod:`.metrics`), written as JSON and Markdown with
plots (:mod:`.report`) and compared with a committed baseline (:mod:`.gate`).
Loaders: the sample company's persona set (:mod:`.personas`), BEIR
(:mod:`.beir`) and ClapNQ (:mod:`.clapnq`).

This package sits in the roof layer because it composes a runtime from
settings; nothing below ``clearance`` imports it. Importing it is cheap: the
command line registers :func:`.cli.evaluate` at start-up.
"""
