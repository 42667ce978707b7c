"""The simulation studies: cohorts drawn where every patient's true risk is known.

``dgp`` the reconstruction's data-generating process, ``study`` the fitting-method study
(``cart-risk simulate``), ``tables`` its summaries and figure, ``monte_carlo`` Monte Carlo SEs,
``feature_sets`` and ``truths`` its candidates and true-risk processes; ``coverage`` /
``coverage_tables`` the direct coverage study, ``end_to_end`` the ensemble pipeline's, ``honest``
the section of /about and the report showing the study of a bundle's kind. Imports the layers below.
"""
