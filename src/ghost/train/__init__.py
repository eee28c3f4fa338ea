"""Training: the loop, its hooks and services, checkpoints, recipes.

`from ghost import train` gives this package, and calling it runs
`ghost.train.loop.train` (DESIGN.md section 4b: `train(data=..., out=...)`). The package
is made callable because Python binds a subpackage's name on its parent package, so a
plain function named `ghost.train` would be replaced by this module on first import.
"""

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from ghost.train.loop import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
