"""Register a checkpoint trained elsewhere; a file that does not load or has the wrong classes
is refused with the reason."""

from django.core.management.base import BaseCommand, CommandError

from inference import services
from inference.engine.checkpoint import CheckpointError


class Command(BaseCommand):
    help = "Register a bearsite checkpoint file as a candidate model version."

    def add_arguments(self, parser):
        parser.add_argument("checkpoint")
        parser.add_argument("--name", default=None)
        parser.add_argument("--threshold", type=float, default=None, help="review threshold")
        parser.add_argument("--activate", action="store_true")

    def handle(self, *args, checkpoint, name, threshold, activate, **options):
        try:
            version = services.model_register(
                checkpoint_path=checkpoint, name=name or checkpoint.rsplit("/", 1)[-1],
                review_threshold=threshold, init="external",
                notes=f"registered with register_model from {checkpoint}",
            )
        except CheckpointError as exc:
            raise CommandError(f"Refused: {exc}") from None
        if activate:
            services.model_promote(version=version, reason="register_model --activate")
        self.stdout.write(self.style.SUCCESS(f"Registered model version #{version.pk}: {version.name}"))
