"""Building one outcome's model the way cart-risk ships it, from a cohort to a bundle entry.

``config`` reads which predictors each model uses, ``methods`` the candidate fitting methods,
``fit_models`` fits and validates one model (``bootstrap``: Efron-Gong optimism, ``audit``: the
stored estimators, ``card_warnings``), ``pooling`` pools an ensemble's members, ``bundle_models``
reads the fitted models back. Imports :mod:`training.fitting` and :mod:`training.evaluation`.
"""
