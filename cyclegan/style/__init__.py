"""Feed-forward style transfer: networks that paint a photo in one pass.

``fast``: the transformer network of Johnson et al. (2016), one per style, and with conditional instance
norm (Dumoulin et al. 2017) many styles in one network. ``adain``: any style in one pass with adaptive
instance normalisation (Huang & Belongie 2017). The optimisation baseline of Gatys et al. is ``nst``.
"""
