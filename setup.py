"""Only the optional C extension lives here; everything else is in pyproject.toml.

`optional=True`: on a machine without a C compiler or the Python headers the build goes on
without it and `aaa.radius.packet` uses its Python loop (same results, slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("aaa._speedups", ["aaa/_speedups.c"], optional=True)])
