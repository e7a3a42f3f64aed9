"""cyclegan: unpaired image-to-image translation, faithful to the CycleGAN paper, and style transfer.

From Python: ``cyclegan.load(name_or_path)(image)`` and ``cyclegan.stylize(content, style)`` (``api.py``).
"""

__version__ = "0.1.0"
__all__ = ["load", "stylize"]


def __getattr__(name: str):
    """``load`` and ``stylize``, imported on first use: they need PyTorch (seconds to import), and the
    command line's listing commands and the download code, which import this package, do not."""
    if name in __all__:
        from . import api  # PyTorch: imported when the API is first used, not with the package

        return getattr(api, name)
    raise AttributeError(f"module 'cyclegan' has no attribute {name!r}")
