"""The simulation studies: cohorts drawn where every patient's true risk is known.

``dgp`` is the reconstruction's data-generating process, ``study`` the pre-registered fitting-method
study (``cart-risk simulate``, docs/method-selection.md), ``tables`` its summaries and figure,
``monte_carlo`` the Monte Carlo standard errors. Imports the layers below it.
"""
