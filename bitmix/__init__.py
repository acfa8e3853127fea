"""bitmix: the application layer on top of the golden model (``sw``), the RTL (``rtl``), the generator
(``gen``) and the testbenches (``verif``): the ``bitmix`` command line, :mod:`bitmix.cli`."""
