"""What every job (train, evaluate, tune, demo) shares and no network needs.

timm keeps the same pieces in ``timm/utils/``, apart from its models: run directories
([`runs`][predify.runtime.runs]), output folders (``outputs``) and their lock (``lock``), the
fingerprint of a run (``fingerprint``), the store of finished cells (``store``), CSV tables
(``tables``), progress bars (``progress``), processes (``distributed``), devices (``device``),
precision and memory format (``precision``), data loading (``loading``), figures
(``plotting``), the CLI's shared options (``cli_options``) and the one check of counts and
ranges (``validation``).

The network library (the modules at the top of ``predify``) never imports from here.
"""
