"""cyclegan: unpaired image-to-image translation, faithful to the CycleGAN paper."""

__version__ = "0.1.0"
