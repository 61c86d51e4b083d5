"""skelssl: self-supervised 3D-skeleton action representation learning."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skelssl")
except PackageNotFoundError:  # run from a source tree that was not installed
    __version__ = "0+unknown"
