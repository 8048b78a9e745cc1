"""Ad click-through, Berg's second use case, as a plug-in (see :mod:`berg.usecase`).

An impression (an ad shown to a viewer) is scored when it is served; its label says whether the
viewer clicked it within the attribution window, and is known within minutes.
"""
