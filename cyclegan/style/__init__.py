"""The style-transfer family, on the shared core: one loss network (``vgg``), one image helper (``images``),
the optimisation of Gatys et al. (``gatys``, with ``photoreal``, ``masks`` and ``histogram`` as its extra
loss terms), post-steps on any image (``post``), and two feed-forward networks that run through the
translate pipeline like every network: ``fast`` (Johnson et al., with conditional instance norm for many
styles) and ``adain`` (Huang & Belongie, any style in one pass).
"""
