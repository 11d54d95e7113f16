"""clientdedupe's benchmark suite: ``python benchmarks/run.py [--quick] [--json PATH]``.

Every figure is measured with and without clientdedupe in the same run, because the
machines these run on are shared and noisy: absolute times do not carry from run to
run, ratios do.
"""
