"""The physics of a powder pattern, as plain functions and tables: wavelengths, atomic form
factors, Bragg's law, Lorentz-polarisation and pymatgen's peak-merging rule
(:mod:`~xrdcore.physics.scattering`), and peak shapes and widths
(:mod:`~xrdcore.physics.profiles`). Imports only :mod:`xrdcore.validation`.
"""
