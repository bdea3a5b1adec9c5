"""Teaching aids for the book, on top of everything else: answer checks for the exercises
(:mod:`~xrdcore.teaching.checks`) and the interactive explorers
(:mod:`~xrdcore.teaching.widgets`). Nothing in the engine imports them.
"""
