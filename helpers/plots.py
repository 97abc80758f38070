"""Figures the notebooks share: grids of Fashion-MNIST images with their titles."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import is_color_like

from .data import CLASSES_ZH


def show_images(
    images: Sequence[torch.Tensor],
    titles: Sequence[str],
    ncols: int = 3,
    suptitle: str | None = None,
    cell_size: float = 2.4,
    title_colors: Sequence[str] | None = None,
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> plt.Figure:
    """Draw grayscale images (each [1, H, W] or [H, W]) in a grid, each with its title (in its color, if given).

    Every panel uses the same grey scale: ``value_range`` (default 0 to 1, what the series' transform gives)
    maps its low end to black and its high end to white, so a darker panel really is a darker image.
    ``value_range=None`` stretches each panel to its own minimum and maximum instead.
    """
    if len(images) != len(titles):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles; give one title per image")
    if title_colors is not None:
        if len(title_colors) != len(titles):
            raise ValueError(f"got {len(titles)} titles but {len(title_colors)} title colors; give one color per title")
        bad = [c for c in title_colors if not is_color_like(c)]
        if bad:
            raise ValueError(f"title colors must be matplotlib colors such as 'black' or 'red'; got {bad[0]!r}")
    if len(images) == 0:
        raise ValueError("no images to show")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1; got {ncols}")
    if value_range is not None and not (len(value_range) == 2 and value_range[0] < value_range[1]):
        raise ValueError(f"value_range must be (low, high) with low < high, or None; got {value_range!r}")
    vmin, vmax = value_range if value_range is not None else (None, None)
    ncols = min(ncols, len(images))  # no empty columns when there are fewer images than ncols
    nrows = -(-len(images) // ncols)
    # constrained layout keeps each row's titles clear of the images above (tight_layout let them overlap)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell_size * ncols, cell_size * nrows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    colors = title_colors if title_colors is not None else [None] * len(titles)
    for ax, image, title, color in zip(axes.flat, images, titles, colors):
        # a tensor here warns in NumPy 2; one vmin/vmax for all panels (imshow would stretch each one)
        ax.imshow(image.detach().cpu().squeeze().numpy(), cmap="gray", vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=12, **({"color": color} if color is not None else {}))
    if suptitle:
        fig.suptitle(suptitle, fontsize=14)
    return fig


def sample_grid(
    dataset,
    rows: int = 3,
    cols: int = 3,
    seed: int = 0,
    class_names: Sequence[str] = CLASSES_ZH,
    suptitle: str | None = None,
) -> plt.Figure:
    """Show ``rows * cols`` images drawn at random (seeded) from a dataset of (image, label)."""
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be at least 1; got rows={rows}, cols={cols}")
    if len(dataset) < rows * cols:
        raise ValueError(f"the dataset has {len(dataset)} items, fewer than rows * cols = {rows * cols}")
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(dataset), generator=generator)[: rows * cols].tolist()
    images, titles = [], []
    for i in indices:
        image, label = dataset[i]
        images.append(image)
        titles.append(class_names[int(label)])
    return show_images(images, titles, ncols=cols, suptitle=suptitle)
