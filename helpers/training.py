"""Training: the train and test loops the notebooks show, fit() that runs them for several epochs, predict()."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

import torch
from torch import nn
from tqdm.std import tqdm

from .params import check_parameter

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]  # a DataLoader, a TensorLoader, a list of (X, y)

# No elapsed time or rate in the bar, so a stored notebook output is the same on every run.
BAR_FORMAT = "{desc} |{bar:20}| {n_fmt}/{total_fmt}{postfix}"


def train_loop(
    dataloader: Batches,
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str | None = None,
) -> float:
    """Train ``model`` for one epoch over ``dataloader``; return the mean training loss per sample."""
    if device is None:
        device = next(model.parameters()).device  # the data goes to the device the model is on
    model.train()  # layers such as Dropout and BatchNorm behave differently while training
    total_loss = torch.zeros((), device=device)
    count = 0
    for X, y in dataloader:
        X, y = X.to(device), y.to(device)
        pred = model(X)  # logits, shape [batch, 10]
        loss = loss_fn(pred, y)  # mean loss over the batch

        optimizer.zero_grad()  # gradients add up across backward() calls: clear the last batch's
        loss.backward()  # backpropagation: fills .grad of every parameter
        optimizer.step()  # update each parameter using its .grad

        total_loss += loss.detach() * len(y)  # stays on the device: no wait for the accelerator per batch
        count += len(y)
    if count == 0:
        raise ValueError("the dataloader yielded no batches; give it at least one sample")
    return total_loss.item() / count


def test_loop(
    dataloader: Batches,
    model: nn.Module,
    loss_fn: nn.Module,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """Evaluate ``model`` on ``dataloader``; return (mean loss per sample, accuracy between 0 and 1)."""
    if device is None:
        device = next(model.parameters()).device
    model.eval()  # evaluation mode: Dropout off, BatchNorm uses its running statistics
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    count = 0
    with torch.no_grad():  # no computational graph: less memory, less time
        for X, y in dataloader:
            X, y = X.to(device), y.to(device)
            pred = model(X)
            total_loss += loss_fn(pred, y) * len(y)
            correct += (pred.argmax(1) == y).sum()  # the class with the largest logit is the prediction
            count += len(y)
    if count == 0:
        raise ValueError("the dataloader yielded no batches; give it at least one sample")
    return total_loss.item() / count, correct.item() / count


def fit(
    model: nn.Module,
    train_dataloader: Batches,
    test_dataloader: Batches,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Run ``epochs`` epochs of train_loop then test_loop; return the history, one value per epoch.

    The history has "train_loss", "test_loss", "test_accuracy" and "train_seconds"
    (wall-clock time of the training pass, evaluation not included). The progress
    bar (``progress=False`` turns it off) goes to stdout and is redrawn once per
    epoch with the rounded loss and accuracy, so its text is the same on every run.
    """
    check_parameter("epochs", epochs, int, minimum=0)
    history: dict[str, list[float]] = {"train_loss": [], "test_loss": [], "test_accuracy": [], "train_seconds": []}
    bar = tqdm(
        total=epochs,
        desc="轮 epoch",
        file=sys.stdout,  # 进度条写到标准输出 (Jupyter 会替换 sys.stdout，所以在这里才取)
        bar_format=BAR_FORMAT,
        mininterval=float("inf"),  # 不按时间自动重画：只在每轮结束时重画一次
        maxinterval=float("inf"),
        disable=not progress,
    )
    with bar:
        for _ in range(epochs):
            start = time.perf_counter()
            train_loss = train_loop(train_dataloader, model, loss_fn, optimizer, device)  # 训练一轮
            history["train_seconds"].append(time.perf_counter() - start)  # 只计训练，不计评估
            test_loss, accuracy = test_loop(test_dataloader, model, loss_fn, device)  # 在测试集上评估
            history["train_loss"].append(train_loss)
            history["test_loss"].append(test_loss)
            history["test_accuracy"].append(accuracy)
            bar.set_postfix_str(
                f"train loss {train_loss:.4f}, test loss {test_loss:.4f}, accuracy {accuracy:.1%}", refresh=False
            )
            bar.update(1)
            bar.refresh()
    return history


def predict(
    model: nn.Module,
    dataloader: Batches,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (predicted classes, true classes) for every sample of ``dataloader``, both on the CPU."""
    if device is None:
        device = next(model.parameters()).device
    model.eval()  # 评估模式
    predicted, targets = [], []
    with torch.no_grad():  # 只做前向计算，不需要计算图
        for X, y in dataloader:
            predicted.append(model(X.to(device)).argmax(1).cpu())  # logits 最大的类别就是预测
            targets.append(y.cpu())
    if not predicted:
        raise ValueError("the dataloader yielded no batches; give it at least one sample")
    return torch.cat(predicted), torch.cat(targets)
