"""``cart-risk report``: the statistician's review page of a bundle.

``page`` assembles it; ``sections`` the model cards and tables, ``ensemble_section`` what differs
across reconstructions, ``curves`` the figures' numbers, ``plots`` their drawing (matplotlib),
``templating`` and ``templates/`` the autoescaped HTML, ``markdown_blocks`` the ASSUMPTIONS.md reader.
"""
