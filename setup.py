"""Only the optional C extensions live here; everything else is in pyproject.toml.

`optional=True`: on a machine without a C compiler, the Python headers (or, for
`_radiuswire`, OpenSSL's headers) the build goes on without them and the package uses its
Python code instead (same results, slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("aaa._speedups", ["aaa/_speedups.c"], libraries=["m"], optional=True),
    Extension("aaa._radiuswire", ["aaa/_radiuswire.c"], libraries=["crypto"], optional=True),
])
