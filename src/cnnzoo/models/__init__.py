"""Model families, one file each. Importing this package registers every model.

Any module in this folder not starting with ``_`` is a family file and is imported here, so
adding a family is adding its file.
"""

import importlib
import pkgutil

from ._base import AuxOutputs, ZooModel

for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["AuxOutputs", "ZooModel"]
