"""The training loop of our own SimCLR and supervised CIFAR ResNets: resumable, with snapshots and a card.

The whole training split lives on the compute device as uint8 and is augmented there in batches
(core.augment), so the CPU does no per-image work and a GPU is never starved.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from core.augment import crop_flip, simclr_views
from core.data import CIFAR10_MEAN, CIFAR10_STD, load_split, normalize
from core.device import pick_device
from core.probes import knn_accuracy, linear_probe
from models import ArchConfig, build_resnet, save_folder, save_snapshot, save_snapshot_config
from training.card import model_card
from training.objectives import SimCLRNet, lr_at, nt_xent
from training.precision import bf16_native, training_format

STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    """A training run; the defaults are the recipe of the bundled checkpoints."""

    objective: str  # "simclr" or "supervised"
    out: str  # folder for the checkpoint, its card and the resumable state
    depth: int = 18
    width: int = 16  # first-stage channels (64 = standard ResNet)
    epochs: int = 20
    batch_size: int = 256  # images per step (SimCLR sees two views of each)
    lr: float = 0.0  # peak learning rate; 0 picks the recipe's (see peak_lr)
    weight_decay: float = 5e-4
    momentum: float = 0.9
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to zero
    temperature: float = 0.5  # NT-Xent temperature (SimCLR)
    projector_dim: int = 128  # SimCLR projector output; hidden width is 4x the feature width
    label_smoothing: float = 0.1  # supervised cross-entropy
    seed: int = 0
    data_dir: str | None = None
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    snapshots: tuple[int, ...] = ()  # epochs after which a float16 copy is kept (bundled:NAME@epoch-K)

    def peak_lr(self) -> float:
        """SimCLR: 0.06 per 256 images (lightly's CIFAR-10 benchmark); supervised: 0.2 per 256."""
        if self.lr:
            return self.lr
        return (0.06 if self.objective == "simclr" else 0.2) * self.batch_size / 256


def _build(config: TrainConfig, device: torch.device) -> tuple[nn.Module, ArchConfig]:
    supervised = config.objective == "supervised"
    arch = ArchConfig(depth=config.depth, width=config.width, num_classes=10 if supervised else 0)
    net: nn.Module = build_resnet(arch)
    if not supervised:
        net = SimCLRNet(net, arch.feature_dim, config.projector_dim)
    return net.to(device, memory_format=training_format(device)), arch


def _epoch(net, optimizer, images, labels, config, epoch, device, total_steps, warmup) -> float:
    """One pass over the training split; returns the mean loss."""
    g = torch.Generator(device=device).manual_seed(config.seed * 1000 + epoch)
    order = torch.randperm(len(images), generator=g, device=device)
    steps = len(images) // config.batch_size
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16_native(device))
    fmt = training_format(device)
    net.train()
    losses = torch.zeros((), device=device)
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{config.epochs}", file=sys.stderr, mininterval=30)
    for step in bar:
        idx = order[step * config.batch_size : (step + 1) * config.batch_size]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch * steps + step, total_steps, warmup, config.peak_lr())
        batch = images[idx]
        with autocast:
            if config.objective == "simclr":
                views = torch.cat([simclr_views(batch, g), simclr_views(batch, g)])
                x = normalize(views, CIFAR10_MEAN, CIFAR10_STD).contiguous(memory_format=fmt)
                loss = nt_xent(net(x), config.temperature)
            else:
                x = normalize(crop_flip(batch, g), CIFAR10_MEAN, CIFAR10_STD).contiguous(memory_format=fmt)
                loss = F.cross_entropy(net(x).float(), labels[idx], label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses += loss.detach()
    return float(losses) / steps


@torch.inference_mode()
def _features(backbone: nn.Module, images: torch.Tensor, device: torch.device, batch: int = 1000) -> torch.Tensor:
    backbone.eval()
    out = []
    for start in range(0, len(images), batch):
        x = normalize(images[start : start + batch].to(device), CIFAR10_MEAN, CIFAR10_STD)
        out.append(backbone(x.contiguous(memory_format=training_format(device))).float())
    return torch.cat(out)


def evaluate(config: TrainConfig, net: nn.Module, device: torch.device, quick: bool = False) -> dict[str, float]:
    """Supervised: test accuracy. SimCLR: kNN (k=200, cosine) and linear-probe test accuracy.

    `quick` uses 10,000 training and 2,000 test images for a cheap progress check.
    """
    train_x, train_y, _ = load_split("train", config.data_dir)
    test_x, test_y, _ = load_split("test", config.data_dir)
    if quick:
        train_x, train_y, test_x, test_y = train_x[:10000], train_y[:10000], test_x[:2000], test_y[:2000]
    as_tensor = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())  # noqa: E731
    ytr, yte = torch.from_numpy(train_y).to(device), torch.from_numpy(test_y).to(device)
    if config.objective == "supervised":
        logits = _features(net, as_tensor(test_x), device)
        return {"test_accuracy": float((logits.argmax(1) == yte).float().mean())}
    backbone = net.backbone
    bank, query = _features(backbone, as_tensor(train_x), device), _features(backbone, as_tensor(test_x), device)
    metrics = {"knn_accuracy": knn_accuracy(bank, ytr, query, yte, 10)}
    if not quick:
        metrics["linear_probe_accuracy"] = linear_probe(bank, ytr, query, yte, 10, weight_decay=1e-4, max_iter=300)
    return metrics


def _save_state(folder: Path, net: nn.Module, optimizer, epoch: int, epochs: int, log: list) -> None:
    tmp = folder / (STATE_FILE + ".tmp")
    state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "log": log}
    torch.save(state | {"epochs": epochs}, tmp)
    tmp.replace(folder / STATE_FILE)  # atomic: a kill mid-write never corrupts the last good state


def _shipped(config: TrainConfig, net: nn.Module) -> nn.Module:
    """The network that is shipped: the classifier, or SimCLR's backbone without its projector."""
    return net if config.objective == "supervised" else net.backbone


def train(config: TrainConfig, command: str) -> dict[str, float]:
    """Train (resuming from the last finished epoch), evaluate, and write the checkpoint folder."""
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    folder = Path(config.out)
    folder.mkdir(parents=True, exist_ok=True)
    net, arch = _build(config, device)
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=config.peak_lr(),
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.objective == "supervised",
    )
    start, log = 0, []
    if (folder / STATE_FILE).exists():
        state = torch.load(folder / STATE_FILE, map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, log = state["epoch"], state["log"]
        if state.get("epochs") != config.epochs:
            before = state.get("epochs", "unrecorded")
            log.append({"note": f"resumed after epoch {start} with --epochs {config.epochs} (schedule was {before})"})
        print(f"resuming after epoch {start}", flush=True)
    meta = {"method": config.objective, "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}
    if config.snapshots:  # snapshots load as what they are before the final network (and its config) exists
        save_snapshot_config(arch, meta, config.epochs, folder)
    images_np, labels_np, source = load_split("train", config.data_dir)
    images = torch.from_numpy(images_np.transpose(0, 3, 1, 2).copy()).to(device)
    labels = torch.from_numpy(labels_np).to(device)
    steps = len(images) // config.batch_size
    total, warmup = steps * config.epochs, int(steps * config.warmup_epochs)
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        loss = _epoch(net, optimizer, images, labels, config, epoch, device, total, warmup)
        seconds = time.perf_counter() - t0
        entry = {"epoch": epoch + 1, "loss": round(loss, 4), "seconds": round(seconds, 1)}
        snapshot = epoch + 1 in config.snapshots
        if snapshot or (config.objective == "simclr" and (epoch + 1) % 5 == 0 and epoch + 1 < config.epochs):
            entry.update(evaluate(config, net, device, quick=True))
        if snapshot:
            save_snapshot(_shipped(config, net), folder, epoch + 1, entry)
        log.append(entry)
        print(json.dumps(entry), flush=True)
        _save_state(folder, net, optimizer, epoch + 1, config.epochs, log)
    metrics = evaluate(config, net, device)
    print(json.dumps({"final": metrics}), flush=True)
    module = _shipped(config, net)
    save_folder(module, arch, meta | {"metrics": metrics}, folder)
    (folder / "README.md").write_text(model_card(config, arch, metrics, log, command, source, device))
    return metrics
