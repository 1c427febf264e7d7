"""The workbench: experiments above the kernel.

Configuration (:mod:`.config`), the side-by-side comparison (:mod:`.compare`),
tuning (:mod:`.tuning`), run folders (:mod:`.runs`), reading saved runs back
(:mod:`.loading`), figures, reports and publishing, and run observers. It
imports the kernel (``du_framework``); the kernel never imports it, and the
command line (``du_framework.cli``) sits above both (docs/concepts.md).
"""
