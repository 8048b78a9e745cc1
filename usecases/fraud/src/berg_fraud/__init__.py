"""Card fraud, Berg's reference use case, as a plug-in (see :mod:`berg.usecase`)."""
