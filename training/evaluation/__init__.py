"""How good a fitted model is: discrimination, calibration, sample size, proportional hazards.

``metrics`` (C, calibration slope and intercept, Brier, ICI / E50 / E90), ``concordance``,
``ph_test`` (R's ``cox.zph``), ``sample_size`` (Riley et al.), ``bands`` (the sCRS rate by burden
subgroup with Wilson intervals). Imports :mod:`training.fitting` only.
"""
