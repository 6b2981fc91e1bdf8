"""One module per reproduced study: configuration, run and report.

Importing this package declares the built-in studies to the results store's registry
(:func:`rnnmem.store.registry.register_study_modules`), so that ``rnnmem sweep`` and
``rnnmem.store.registry.get_study`` find them by name; each module is imported only when one of its
studies is looked up. The store itself never imports a study.
"""

from ..store.registry import register_study_modules

#: modules that register a study runnable by name (``STUDY`` of each): forgetting, zhao, zhao_reviews
STUDY_MODULES = ("rnnmem.studies.muccino", "rnnmem.studies.zhao", "rnnmem.studies.zhao_reviews")

register_study_modules(*STUDY_MODULES)
