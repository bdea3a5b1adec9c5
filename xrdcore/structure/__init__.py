"""Crystal structures and what is done to them before any diffraction: the :class:`Crystal`
arrays and CIF reading (:mod:`~xrdcore.structure.crystal`), space-group analysis
(:mod:`~xrdcore.structure.symmetry`), parameter spaces for optimisation
(:mod:`~xrdcore.structure.parametrize`), random distortions
(:mod:`~xrdcore.structure.perturb`), comparison with the truth
(:mod:`~xrdcore.structure.matching`) and the prototype library
(:mod:`~xrdcore.structure.datasets`). Imports only :mod:`xrdcore.validation`.
"""
