"""Experiment drivers: everything that runs MOPO many times or reports on runs.

``demo`` (the README's `make demo`), ``sweep`` (grids of trials, shared models, resume and
extension), ``report`` (sweep tables and plots), ``calibration`` (how well an estimator's u(s, a)
tracks the model's true error) and ``run_evaluation`` (a finished run re-evaluated). They sit on
top of :mod:`mopo_kit.mopo` and the components and are what the CLI's experiment commands call;
nothing in the algorithm imports them.
"""
