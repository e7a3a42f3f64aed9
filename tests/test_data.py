import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.data import (
    Augment,
    EpochBatches,
    UnpairedDataset,
    domain_folder,
    find_images,
    from_uint8,
    image_folder,
    load_image,
    to_image,
    to_tensor,
    to_uint8,
)
from cyclegan.errors import UserError
from tests.conftest import make_folder, write_image


def test_find_images_recursive_any_case(tmp_path):
    for name in ["a.JPG", "sub/b.png", "sub/deeper/c.WebP", "d.tiff", "e.bmp", "notes.txt", ".hidden.png"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert found == ["a.JPG", "d.tiff", "e.bmp", "sub/b.png", "sub/deeper/c.WebP"]


def test_image_folder_errors_name_the_path(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images") as e:
        image_folder(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(e.value)


def test_dataset_root_is_not_taken_for_a_domain(tmp_path):
    for half in ("trainA", "trainB"):
        make_folder(tmp_path / "ds" / half, 1)
    with pytest.raises(UserError, match="trainA"):
        domain_folder(tmp_path / "ds", "domain A folder")
    assert len(domain_folder(tmp_path / "ds" / "trainA", "domain A folder")) == 1


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA"])
def test_load_image_modes_become_rgb(tmp_path, mode):
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    path = write_image(tmp_path / f"x.{fmt.lower()}", size=(20, 10), mode=mode, fmt=fmt)
    img, alpha = load_image(path, keep_alpha=True)
    assert img.mode == "RGB" and img.size == (20, 10)
    assert (alpha is not None) == (mode in ("RGBA", "LA"))


def test_load_16bit_scales_instead_of_clipping(tmp_path):
    arr = np.full((4, 4), 65535, dtype=np.uint16)
    arr[0, 0] = 0
    Image.fromarray(arr).save(tmp_path / "deep.png")
    img, _ = load_image(tmp_path / "deep.png")
    px = np.asarray(img)
    assert px[1, 1].tolist() == [255, 255, 255] and px[0, 0].tolist() == [0, 0, 0]


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (30, 10), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "o.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "o.jpg")[0].size == (10, 30)


@pytest.mark.parametrize("preprocess,size,expected", [
    ("resize_and_crop", (50, 40), (3, 32, 32)),
    ("crop", (50, 40), (3, 32, 32)),
    ("crop", (20, 20), (3, 32, 32)),  # smaller than the crop: padded, not crashed
    ("scale_width", (72, 36), (3, 32, 64)),  # width to load_size, aspect kept (height at least image_size)
    ("scale_width_and_crop", (80, 40), (3, 32, 32)),
    ("none", (50, 42), (3, 40, 48)),  # sides rounded to the nearest multiple of 4 (ties to even)
])
def test_augment_shapes(preprocess, size, expected):
    aug = Augment(preprocess, load_size=64 if "scale" in preprocess else 36, image_size=32)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    out = aug(img, seed=1)
    assert tuple(out.shape) == expected
    assert out.min() >= -1 and out.max() <= 1


def test_augment_is_a_function_of_the_seed():
    aug = Augment(load_size=40, image_size=32)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8))
    assert torch.equal(aug(img, 7), aug(img, 7))
    assert any(not torch.equal(aug(img, 7), aug(img, s)) for s in range(8, 12))


def test_epoch_length_is_max_of_domains_and_b_is_random(tmp_path):
    a = make_folder(tmp_path / "A", 2, seed=0)
    b = make_folder(tmp_path / "B", 5, seed=10)
    ds = UnpairedDataset(find_images(a), find_images(b), Augment(load_size=32, image_size=32, flip=False))
    assert len(ds) == 5
    item = ds[(0, 3)]  # A index wraps: 3 % 2 == 1
    assert item["A"].shape == (3, 32, 32) and item["bad"] == []
    b_tensors = {tuple(ds[(e, 0)]["B"].flatten()[:5].tolist()) for e in range(12)}
    assert len(b_tensors) > 1  # B is drawn at random, not paired with A


def test_unreadable_file_is_reported_and_replaced(tmp_path):
    a = make_folder(tmp_path / "A", 2)
    (a / "broken.png").write_bytes(b"not an image")
    files = find_images(a)
    ds = UnpairedDataset(files, files, Augment(load_size=32, image_size=32))
    bad_index = files.index(a / "broken.png")
    item = ds[(0, bad_index)]
    assert item["A"].shape == (3, 32, 32)
    assert any("broken.png" in msg for msg in item["bad"])


def test_epoch_batches_order_resume_and_ranks():
    full = list(EpochBatches(n=7, batch_size=2, seed=3, start_epoch=0, end_epoch=2))
    assert len(full) == 8 and all(len({e for e, _ in b}) == 1 for b in full)  # batches never span epochs
    assert sorted(i for b in full[:4] for _, i in b) == list(range(7))
    assert [i for _, i in full[0]] != [i for _, i in full[4]]  # a new order each epoch
    resumed = list(EpochBatches(n=7, batch_size=2, seed=3, start_epoch=0, end_epoch=2, start_batch=3))
    assert resumed == full[3:]
    ranks = [list(EpochBatches(7, 2, 3, 0, 1, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 2
    seen = {i for r in ranks for b in r for _, i in b}
    assert seen == set(range(7))


def test_large_images_are_logged_also_in_training(tmp_path, monkeypatch, caplog):
    """Between PIL's warning and error limits an image is decoded, but never silently."""
    a = make_folder(tmp_path / "A", 1, size=(64, 48))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 64×48 = 3072 pixels: over it, under twice it
    ds = UnpairedDataset(find_images(a), find_images(a), Augment(load_size=32, image_size=32))
    with caplog.at_level("WARNING"):
        item = ds[(0, 0)]
        ds[(1, 0)]
    assert item["bad"] == []
    notes = [r.getMessage() for r in caplog.records if "very large" in r.getMessage()]
    assert len(notes) == 1 and "img_000.png" in notes[0] and "64×48" in notes[0]  # once per file


def test_max_side_decodes_a_large_jpeg_at_a_reduced_scale(tmp_path):
    photo = write_image(tmp_path / "photo.jpg", size=(400, 300))
    assert load_image(photo)[0].size == (400, 300)
    assert load_image(photo, max_side=100)[0].size == (100, 75)  # a quarter of the scale: never below 100
    assert load_image(photo, max_side=90)[0].size == (100, 75)
    assert load_image(photo, max_side=300)[0].size == (400, 300)  # less than a halving: decoded in full


def test_uint8_conversion_round_trips():
    pixels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    x = from_uint8(pixels)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(to_uint8(x), pixels)
    assert torch.equal(to_uint8(torch.tensor([-3.0, float("inf"), 0.999])), torch.tensor([0, 255, 255],
                                                                                      dtype=torch.uint8))
    img = Image.fromarray(pixels[0].permute(1, 2, 0).numpy())
    assert np.array_equal(np.asarray(to_image(to_tensor(img))), np.asarray(img))
