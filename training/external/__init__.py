"""External validation and updating at a center (``cart-risk validate`` / ``update``).

``validation`` assesses a bundle's models on a center's cohort, ``validation_page`` draws it,
``update_tests`` is the closed testing procedure that picks an update, ``center_simulation`` draws
synthetic center cohorts with a known miscalibration. The top layer below the commands.
"""
