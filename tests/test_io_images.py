"""Image reading: every pixel format comes back upright uint8 RGB; folders sniffed and naturally sorted."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from fervid.io import images
from fervid.io.errors import InputError
from fervid.io.images import ImageFolderReader, list_images, natural_key, read_image
from fervid.io.probe import probe


def save(image: Image.Image, path: Path, **kwargs: object) -> Path:
    image.save(path, **kwargs)
    return path


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["img10.png", "img2.png", "IMG3.png", "img1.png", "a.png", "img2b.png"]
    assert sorted(names, key=lambda n: natural_key(Path(n))) == [
        "a.png",
        "img1.png",
        "img2.png",
        "img2b.png",
        "IMG3.png",
        "img10.png",
    ]


def test_list_images_sniffs_content_not_extensions(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        save(Image.new("RGB", (8, 8), (i, i, i)), tmp_path / f"img{i}.png")
    save(Image.new("RGB", (8, 8)), tmp_path / "img3.dat", format="JPEG")  # image, odd extension
    (tmp_path / "img4.jpg").write_text("not an image")  # extension lies
    (tmp_path / "empty.png").touch()
    (tmp_path / ".hidden.png").write_bytes((tmp_path / "img1.png").read_bytes())
    (tmp_path / "sub").mkdir()
    skipped: list[tuple[Path, str]] = []
    found = list_images(tmp_path, on_skip=lambda p, why: skipped.append((p, why)))
    assert [p.name for p in found] == ["img1.png", "img2.png", "img3.dat", "img10.png"]
    assert sorted(p.name for p, _ in skipped) == ["empty.png", "img4.jpg"]


def test_list_images_warns_once_without_a_callback(tmp_path: Path) -> None:
    save(Image.new("RGB", (8, 8)), tmp_path / "a.png")
    (tmp_path / "b.txt").write_text("x")
    with pytest.warns(UserWarning, match="skipped 1 non-image"):
        assert [p.name for p in list_images(tmp_path)] == ["a.png"]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """Orientation 6 means 'rotate 90 degrees clockwise to display'."""
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:20, :20] = (255, 0, 0)  # red block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(Image.fromarray(stored), tmp_path / "phone.jpg", exif=exif, quality=95)
    image = read_image(path)
    assert image.shape == (80, 40, 3)
    assert image[5, 35, 0] > 200 and image[5, 35, 1] < 60  # now at the top-right
    assert images.image_size(path) == (40, 80)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (16, 16), (200, 30, 60)).convert("CMYK"), tmp_path / "print.jpg", quality=100)
    assert Image.open(path).mode == "CMYK"
    np.testing.assert_allclose(read_image(path)[8, 8], (200, 30, 60), atol=4)


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(ramp), tmp_path / "depth.png")
    assert Image.open(path).mode.startswith("I;16")
    assert read_image(path)[0].tolist() == [[0, 0, 0], [100, 100, 100], [255, 255, 255]]


def test_alpha_is_composited_on_black(tmp_path: Path) -> None:
    path = save(Image.new("RGBA", (4, 4), (200, 100, 50, 128)), tmp_path / "a.png")
    np.testing.assert_allclose(read_image(path)[0, 0], (100, 50, 25), atol=1)
    path = save(Image.new("LA", (4, 4), (100, 0)), tmp_path / "la.png")
    assert read_image(path).max() == 0


def test_palette_with_transparency(tmp_path: Path) -> None:
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)
    path = save(palette, tmp_path / "p.png", transparency=1)
    assert read_image(path)[0, 0].tolist() == [0, 0, 0]
    path = save(palette, tmp_path / "opaque.gif")
    assert read_image(path)[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("mode", ["L", "1", "I", "F", "YCbCr"])
def test_other_modes_become_rgb_uint8(tmp_path: Path, mode: str) -> None:
    image = Image.new("L", (6, 4), 255).convert(mode)
    path = save(image, tmp_path / ("x.tiff" if mode in ("I", "F") else "x.jpg" if mode == "YCbCr" else "x.png"))
    rgb = read_image(path)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8 and rgb.min() > 240


def test_too_large_images_are_refused_with_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    with pytest.raises(InputError, match="too large"):
        read_image(path)


def test_bad_files_raise_input_errors(tmp_path: Path) -> None:
    text = tmp_path / "photo.jpg"
    text.write_text("hello")
    with pytest.raises(InputError, match="photo.jpg: not a readable image"):
        read_image(text)
    good = save(Image.effect_noise((64, 64), 50).convert("RGB"), tmp_path / "good.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError, match="cut.jpg"):
        read_image(cut)


def test_folder_reader_frames_and_skips(tmp_path: Path) -> None:
    for i in (1, 2, 10):
        save(Image.new("RGB", (8 + i, 8), (i, 0, 0)), tmp_path / f"f{i}.png")
    good = save(Image.effect_noise((64, 64), 50).convert("RGB"), tmp_path / "f5.jpg")
    reader_paths = list_images(tmp_path)
    (tmp_path / "f5.jpg").write_bytes(good.read_bytes()[:300])  # breaks after listing
    skipped: list[Path] = []
    with ImageFolderReader(reader_paths, on_skip=lambda p, why: skipped.append(p)) as reader:
        frames = list(reader)
    assert [(f.index, f.time_s, f.source) for f in frames] == [
        (0, 0.0, "f1.png"),
        (1, 1.0, "f2.png"),
        (3, 3.0, "f10.png"),
    ]
    assert frames[2].image.shape == (8, 18, 3) and frames[2].image[0, 0, 0] == 10
    assert [p.name for p in skipped] == ["f5.jpg"] and reader.skipped[0][0].name == "f5.jpg"


def test_folder_reader_single_file_early_stop_and_empty(tmp_path: Path) -> None:
    with ImageFolderReader(shared_path("media/fer/justin.jpg")) as reader:
        (frame,) = list(reader)
    assert frame.index == 0 and frame.time_s == 0.0 and frame.source == "justin.jpg"
    before = threading.active_count()
    folder = shared_path("media/dlib_faces")  # holds .xml files too: skipped quietly here
    with ImageFolderReader(folder, queue_size=1, on_skip=lambda path, why: None) as reader:
        assert len(reader) >= 10
        next(iter(reader))
    assert threading.active_count() == before
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        ImageFolderReader(tmp_path / "empty")


def test_probe_image_and_folder(tmp_path: Path) -> None:
    save(Image.new("RGB", (30, 20)), tmp_path / "a2.png")
    save(Image.new("RGB", (8, 8)), tmp_path / "a10.png")
    info = probe(tmp_path)
    assert (info.kind, info.width, info.height, info.frame_count) == ("image_folder", 30, 20, 2)
    assert probe(tmp_path / "a2.png").kind == "image"
