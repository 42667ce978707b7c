"""Defaults shared by training, the command line and the default bundle: typed here only.

Changing one changes the default bundle (its bootstrap and seed are recorded in its manifest).
"""

#: Bootstrap repetitions of optimism correction and of the 95 % confidence intervals of predictions.
DEFAULT_BOOTSTRAP = 200
#: Seed of the bootstrap's ``SeedSequence`` and of the reconstruction (20170201: the first
#: month of the trial's enrolment, February 2017).
DEFAULT_SEED = 20170201
#: joblib backends the training bootstrap may run on; the default is loky (local processes), and
#: dask needs a scheduler address (training/options.py checks both).
BACKENDS = ("loky", "threading", "multiprocessing", "dask")
