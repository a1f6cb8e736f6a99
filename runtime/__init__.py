"""PRP-NAS on-device runtime: loads an exported bundle and switches paths by battery, schedule or
energy budget. Depends on numpy, psutil and one inference backend; never on torch or the trainer.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
