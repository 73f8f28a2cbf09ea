"""The four suites and their fixed sizes (``docs/spec/envelope-v1.md`` section 2).

Defined in :mod:`letterlock._suites`, below :mod:`letterlock._crypto`, which names its
algorithms by suite; re-exported here, where the rest of the core looks for them.
"""

from letterlock._suites import Suite, SuiteSizes

__all__ = ["Suite", "SuiteSizes"]
