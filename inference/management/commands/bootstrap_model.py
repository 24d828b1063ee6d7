"""Register the first model: ResNet-50 with ImageNet weights and a new two-class head.

The weights come from BEARSITE_IMAGENET_WEIGHTS or torchvision's cache; nothing is downloaded
unless ``--download`` is given. Without weights it stops and says where to put the file, unless
``--random-init`` is given, and the version records which it was.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference import services
from inference.engine.checkpoint import (
    IMAGENET_WEIGHT_FILES,
    Checkpoint,
    build_model,
    find_imagenet_weights,
    imagenet_backbone,
    save_checkpoint,
)
from inference.models import ModelVersion


class Command(BaseCommand):
    help = "Register ResNet-50 (ImageNet weights + new head) as a model version."

    def add_arguments(self, parser):
        parser.add_argument("--weights", default=settings.BEARSITE_IMAGENET_WEIGHTS or None,
                            help="path to torchvision's resnet50 ImageNet .pth file")
        parser.add_argument("--random-init", action="store_true",
                            help="use random initialisation when no ImageNet weights are present")
        parser.add_argument("--download", action="store_true",
                            help="download the ImageNet weights through torchvision's weights API")
        parser.add_argument("--activate", action="store_true", help="make it the active model")
        parser.add_argument("--name", default=None)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, weights, random_init, download, activate, name, seed, **options):
        path = find_imagenet_weights(weights)
        if path is None and download:
            import torchvision

            self.stdout.write("Downloading ResNet-50 ImageNet weights (torchvision weights API) …")
            torchvision.models.resnet50(weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V2)
            path = find_imagenet_weights(None)
        torch.manual_seed(seed)
        if path is not None:
            model = imagenet_backbone(path)
            init = ModelVersion.Init.IMAGENET
            note = f"ImageNet weights from {path}"
        elif random_init:
            model = build_model("resnet50", num_classes=2)
            init = ModelVersion.Init.RANDOM
            note = "random initialisation: no ImageNet weights were available offline"
            self.stdout.write(self.style.WARNING(f"Note: {note}."))
        else:
            cache = Path(torch.hub.get_dir()) / "checkpoints"
            raise CommandError(
                "No ImageNet ResNet-50 weights found offline. Put torchvision's file "
                f"({IMAGENET_WEIGHT_FILES[0]}) in {cache}, or set BEARSITE_IMAGENET_WEIGHTS to its "
                "path, or run with --download (needs network), or with --random-init."
            )
        ckpt = Checkpoint(state_dict=model.state_dict(), init=init, config={"bootstrap": note})
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "bootstrap.pt"
            save_checkpoint(ckpt, file)
            version = services.model_register(
                checkpoint_path=file, name=name or f"resnet50-{init}", init=init, notes=note,
            )
        if activate:
            services.model_promote(version=version, reason="bootstrap", start_inference=False)
        self.stdout.write(self.style.SUCCESS(
            f"Registered model version #{version.pk} ({version.get_init_display()})"
            + (", active" if activate else "")
        ))
