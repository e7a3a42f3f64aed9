"""Photorealism: the Matting Laplacian, Deep Photo Style Transfer's regulariser, closed-form smoothing.

A photograph stays a photograph when the output is, in every small window, an affine function of the
input's colours. Levin, Lischinski & Weiss ("A Closed-Form Solution to Natural Image Matting", 2008)
showed that how far an image V is from that is the quadratic form Vᵀ·L·V, with L the Matting Laplacian
of the input. Luan et al. ("Deep Photo Style Transfer", CVPR 2017) add it to the style transfer loss;
Li et al. ("A Closed-form Solution to Photorealistic Image Stylization", ECCV 2018) instead solve one
sparse linear system that pulls any stylised image onto such a locally affine function of the content.

L is built here once per image, without a Python loop over pixels, in compressed sparse row form: each
pixel's row has at most 25 entries (its 5x5 neighbourhood, the pixels that share a 3x3 window with it),
so memory and time grow linearly with the pixels.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

EPS = 1e-7  # Levin et al.'s regularisation of each window's colour covariance, as Luan et al. use it
WINDOW = 3  # window side; Luan et al. and Levin et al. use 3x3


def _windows(img: torch.Tensor) -> torch.Tensor:
    """``[H, W, 3]`` → ``[9, (H-2)·(W-2), 3]``: the colours of each 3x3 window that lies inside the image."""
    h, w, c = img.shape
    patches = F.unfold(img.permute(2, 0, 1)[None], WINDOW)  # [1, 3·9, windows], channel-major
    return patches.view(c, WINDOW * WINDOW, -1).permute(1, 2, 0)


def _window_affinities(img: torch.Tensor, eps: float):
    """Centred colours ``X [9, windows, 3]`` and ``X·(Σ + ε/9·I)⁻¹ [9, windows, 3]`` of every window.

    The affinity of pixels a and b within a window k is (1 + X_aᵀ·(Σ_k + ε/|w|·I)⁻¹·X_b)/|w| (Levin et
    al., eq. 12), with μ_k and Σ_k the mean and covariance of the window's colours.
    """
    win = _windows(img)
    n = win.shape[0]
    mu = win.mean(0)
    x = win - mu
    cov = torch.einsum("akc,akd->kcd", x, x) / n
    inv = torch.linalg.inv(cov + eps / n * torch.eye(3, dtype=img.dtype, device=img.device))
    return x, torch.einsum("akc,kcd->akd", x, inv)


def matting_laplacian(image: torch.Tensor, eps: float = EPS, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The Matting Laplacian of an RGB image ``[3, H, W]`` (or ``[1, 3, H, W]``) in [0, 1].

    Returns an ``[H·W, H·W]`` sparse CSR tensor of ``dtype`` on the image's device, pixels in row-major order.
    L_ij = Σ_k (δ_ij − (1 + (I_i − μ_k)ᵀ(Σ_k + ε/9·I)⁻¹(I_j − μ_k))/9) over the 3x3 windows k inside
    the image that hold both i and j, as in Levin et al.'s reference code. The window statistics are
    computed in float64: with ε = 1e-7 the inverse covariance of a flat window reaches 1e8.
    """
    if image.dim() == 4:
        image = image[0]
    c, h, w = image.shape
    if min(h, w) < WINDOW:
        raise ValueError(f"the Matting Laplacian needs an image of at least {WINDOW}x{WINDOW} px, not {w}x{h}")
    img = image.permute(1, 2, 0).to(torch.float64)
    x, xinv = _window_affinities(img, eps)
    x, xinv = x.permute(0, 2, 1).contiguous(), xinv.permute(0, 2, 1).contiguous()  # [9, 3, windows]
    hw, ww = h - WINDOW + 1, w - WINDOW + 1  # window centres (top-left corners, here) inside the image

    # bands[dy+2, dx+2, y, x] = L at row (y, x), column (y+dy, x+dx). Each pair (a, b) of positions in
    # the window adds its affinity to the band of their offset, on the pixels that a's position covers:
    # 81 whole-image additions instead of a loop over pixels.
    bands = torch.zeros(5, 5, h, w, dtype=torch.float64, device=image.device)
    offsets = [(i // WINDOW, i % WINDOW) for i in range(WINDOW * WINDOW)]
    n = WINDOW * WINDOW
    for a, (ay, ax) in enumerate(offsets):
        values = torch.einsum("ck,bck->bk", xinv[a], x).add_(1).div_(-n)  # a's affinity to each b
        values[a] += 1  # δ_ab
        for b, (by, bx) in enumerate(offsets):
            bands[by - ay + 2, bx - ax + 2, ay:ay + hw, ax:ax + ww] += values[b].view(hw, ww)
    return _bands_to_csr(bands, dtype)


def _bands_to_csr(bands: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[5, 5, H, W]`` per-offset values → ``[H·W, H·W]`` CSR, columns in increasing order."""
    _, _, h, w = bands.shape
    device = bands.device
    ys = torch.arange(h, device=device).view(1, 1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, 1, w)
    dy = torch.arange(-2, 3, device=device).view(5, 1, 1, 1)
    dx = torch.arange(-2, 3, device=device).view(1, 5, 1, 1)
    inside = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)  # [5, 5, H, W]
    cols = (ys + dy) * w + (xs + dx)
    # Row-major pixels, and within a row offsets in (dy, dx) order: column indices ascend, as CSR wants.
    inside = inside.permute(2, 3, 0, 1).reshape(h * w, 25)
    cols = cols.expand(5, 5, h, w).permute(2, 3, 0, 1).reshape(h * w, 25)[inside]
    values = bands.permute(2, 3, 0, 1).reshape(h * w, 25)[inside]
    crow = torch.zeros(h * w + 1, dtype=torch.int64, device=device)
    crow[1:] = inside.sum(1).cumsum(0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it does all we use of it
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values.to(dtype), size=(h * w, h * w), check_invariants=False)


class _QuadraticForm(torch.autograd.Function):
    """Σ_c V_cᵀ·L·V_c for a symmetric sparse L: one sparse matrix product, reused for the gradient 2·L·V."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        lv = laplacian @ v
        ctx.save_for_backward(lv)
        return (v * lv).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (lv,) = ctx.saved_tensors
        return 2 * grad * lv, None


def affine_energy(image: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
    """Σ_c V_c[O]ᵀ·L·V_c[O] of an image ``[1, C, H, W]``: zero when it is locally affine in the content."""
    v = image[0].reshape(image.shape[1], -1).t()  # [H·W, C], pixels in L's row-major order
    if v.dtype != laplacian.dtype:
        v = v.to(laplacian.dtype)
    return _QuadraticForm.apply(v, laplacian)


class PhotorealismLoss(torch.nn.Module):
    """Luan et al.'s photorealism regulariser: ``weight``/2 · Σ_c V_cᵀ·L·V_c, L of the content image.

    The half makes ``weight`` Luan et al.'s λ: their code adds λ·L·V to the gradient (V in [0, 1]),
    which is the gradient of λ/2·VᵀLV.
    """

    def __init__(self, content: torch.Tensor, weight: float, eps: float = EPS):
        super().__init__()
        self.laplacian = matting_laplacian(content, eps)
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight / 2 * affine_energy(x, self.laplacian)


# --- closed-form smoothing (Li et al. 2018) -------------------------------------------------------------


def smooth(stylized: torch.Tensor, content: torch.Tensor, strength: float = 1e4, eps: float = EPS,
           tol: float = 1e-4, max_iter: int = 1000) -> torch.Tensor:
    """Li et al.'s photorealistic smoothing: R = (I + λ·L̃)⁻¹·S, L̃ the content's normalised matting Laplacian.

    ``stylized`` and ``content`` are ``[1, 3, H, W]`` in [0, 1] of the same size. λ = ``strength`` is Li
    et al.'s β/(1 − β): their β = 0.9999 is λ ≈ 1e4. Li et al. normalise their affinity W by its degree
    D (L̃ = D^-½·(D − W)·D^-½); the matting affinity's degree is the number of 3x3 windows holding a
    pixel, 9 everywhere but at the border, so L̃ = L/9 here: the same inside the image, and unlike the
    degree-normalised form it keeps a locally affine image exactly as it is up to the border. The
    system is symmetric positive definite, so conjugate gradients solve it on the device, all three
    channels at once, from R = S; ``eps`` is the windows' ε (a larger one smooths more, and flattens
    the contrast a little).
    """
    _, c, h, w = stylized.shape
    laplacian = matting_laplacian(content, eps)
    s = stylized[0].reshape(c, -1).t().float()

    def apply(r: torch.Tensor) -> torch.Tensor:  # (I + λ·L/9)·r
        return r + strength / (WINDOW * WINDOW) * (laplacian @ r)

    r = s.clone()
    res = s - apply(r)
    p = res.clone()
    rs = (res * res).sum(0)
    stop = tol**2 * (s * s).sum(0)
    for _ in range(max_iter):
        if bool((rs <= stop).all()):
            break
        ap = apply(p)
        alpha = rs / (p * ap).sum(0).clamp_min(1e-30)
        r += alpha * p
        res -= alpha * ap
        rs_new = (res * res).sum(0)
        p = res + (rs_new / rs.clamp_min(1e-30)) * p
        rs = rs_new
    return r.t().reshape(1, c, h, w).clamp(0, 1)
