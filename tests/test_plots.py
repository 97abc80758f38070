"""Tests for helpers/plots.py: show_images and sample_grid, on a tiny fake dataset."""

import matplotlib

matplotlib.use("Agg")  # no display needed; must come before pyplot is imported

import matplotlib.pyplot as plt
import pytest
import torch

from helpers import CLASSES, CLASSES_ZH, sample_grid, show_images


class FakeDataset:
    """Ten random 1x8x8 images labelled 0..9, like a Fashion-MNIST dataset in miniature."""

    def __init__(self, size: int = 10):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.rand(size, 1, 8, 8, generator=generator)
        self.labels = [i % len(CLASSES) for i in range(size)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int):
        return self.images[idx], self.labels[idx]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def titles_of(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_show_images_draws_one_titled_image_per_title():
    images = [torch.rand(1, 8, 8), torch.rand(8, 8), torch.rand(1, 8, 8)]  # [1, H, W] and [H, W] both work
    fig = show_images(images, ["a", "b", "c"], ncols=2, suptitle="grid")
    assert len(fig.axes) == 4  # 2 rows x 2 columns, the last one empty
    assert titles_of(fig) == ["a", "b", "c"]
    assert [len(ax.get_images()) for ax in fig.axes] == [1, 1, 1, 0]
    assert fig.axes[1].get_images()[0].get_array().shape == (8, 8)
    assert fig.get_suptitle() == "grid"


def test_show_images_leaves_no_empty_columns_for_few_images():
    fig = show_images([torch.rand(8, 8)], ["only"], ncols=3)
    assert len(fig.axes) == 1


def test_show_images_colors_each_title():
    fig = show_images([torch.rand(8, 8)] * 3, ["right", "wrong", "right"], title_colors=["black", "red", "green"])
    colors = [matplotlib.colors.to_hex(ax.title.get_color()) for ax in fig.axes]
    assert colors == ["#000000", "#ff0000", "#008000"]


def test_show_images_uses_the_default_title_color_without_colors():
    fig = show_images([torch.rand(8, 8)], ["plain"])
    assert matplotlib.colors.same_color(fig.axes[0].title.get_color(), plt.rcParams["text.color"])


def test_show_images_accepts_tensors_that_require_grad():
    image = torch.rand(1, 8, 8, requires_grad=True)
    fig = show_images([image], ["x"])
    assert titles_of(fig) == ["x"]


def test_show_images_uses_one_grey_scale_for_every_panel():
    dark, bright = torch.full((8, 8), 0.1), torch.full((8, 8), 0.9)
    dark[0, 0], bright[0, 0] = 0.0, 0.8  # two images whose own ranges differ: [0, 0.1] and [0.8, 0.9]
    fig = show_images([dark, bright], ["dark", "bright"])
    limits = [ax.get_images()[0].get_clim() for ax in fig.axes]
    assert limits == [(0.0, 1.0), (0.0, 1.0)]  # 0 is black and 1 is white in both panels
    fig = show_images([dark, bright], ["dark", "bright"], value_range=None)  # each panel stretched
    stretched = [limit for ax in fig.axes for limit in ax.get_images()[0].get_clim()]
    assert stretched == pytest.approx([0.0, 0.1, 0.8, 0.9])
    with pytest.raises(ValueError, match="value_range"):
        show_images([dark], ["x"], value_range=(1.0, 0.0))


@pytest.mark.parametrize(
    ("images", "titles", "ncols", "message"),
    [
        ([torch.rand(8, 8)] * 2, ["one"], 3, "one title per image"),
        ([], [], 3, "no images"),
        ([torch.rand(8, 8)], ["one"], 0, "ncols must be at least 1"),
    ],
)
def test_show_images_rejects_bad_arguments(images, titles, ncols, message):
    with pytest.raises(ValueError, match=message):
        show_images(images, titles, ncols=ncols)


@pytest.mark.parametrize(
    ("colors", "message"),
    [
        (["red"], "2 titles but 1 title colors"),
        (["red", "not-a-color"], "matplotlib colors .* got 'not-a-color'"),
    ],
)
def test_show_images_rejects_bad_title_colors(colors, message):
    with pytest.raises(ValueError, match=message):
        show_images([torch.rand(8, 8)] * 2, ["a", "b"], title_colors=colors)


def test_sample_grid_uses_class_names_and_grid_shape():
    fig = sample_grid(FakeDataset(), rows=2, cols=3, seed=0, suptitle="samples")
    assert len(fig.axes) == 6
    titles = titles_of(fig)
    assert len(titles) == 6 and set(titles) <= set(CLASSES_ZH)
    assert len(set(titles)) == 6  # ten distinct labels, drawn without replacement
    assert fig.get_suptitle() == "samples"


def test_sample_grid_is_reproducible_for_a_seed():
    dataset = FakeDataset()
    first = titles_of(sample_grid(dataset, rows=3, cols=3, seed=1))
    again = titles_of(sample_grid(dataset, rows=3, cols=3, seed=1))
    other_seeds = {tuple(titles_of(sample_grid(dataset, rows=3, cols=3, seed=s))) for s in range(2, 6)}
    assert first == again
    assert other_seeds - {tuple(first)}  # some other seed draws a different sample


def test_sample_grid_accepts_other_class_names():
    fig = sample_grid(FakeDataset(), rows=1, cols=2, class_names=CLASSES)
    assert set(titles_of(fig)) <= set(CLASSES)


@pytest.mark.parametrize(("rows", "cols"), [(0, 3), (3, 0), (-1, 2)])
def test_sample_grid_rejects_empty_grid(rows, cols):
    with pytest.raises(ValueError, match="rows and cols must be at least 1"):
        sample_grid(FakeDataset(), rows=rows, cols=cols)


def test_sample_grid_rejects_grid_larger_than_dataset():
    with pytest.raises(ValueError, match="fewer than rows \\* cols = 12"):
        sample_grid(FakeDataset(size=10), rows=3, cols=4)
