"""The launch form: base model and the run's main settings (defaults from settings)."""

from __future__ import annotations

from django import forms
from django.conf import settings

from inference.models import ModelVersion
from inference.selectors import active_model
from training import selectors
from training.services import FREEZE_LEVELS, config_problems, default_config

FREEZE_HELP = {
    "none": "nothing frozen (needed when training from random initialisation)",
    "stem": "conv1 + bn1, up to the first fork (the paper's choice)",
    "layer1": "stem + layer1",
    "layer2": "stem + layer1 + layer2",
    "layer3": "stem + layer1-3",
}


class LaunchForm(forms.Form):
    base = forms.ChoiceField(label="Base model")
    epochs = forms.IntegerField(min_value=1, max_value=1000)
    lr = forms.FloatField(label="Learning rate", min_value=1e-7, max_value=10)
    batch_size = forms.IntegerField(min_value=2, max_value=4096)
    min_positives = forms.IntegerField(
        min_value=1, help_text="bear tiles in every batch (oversampled with augmentation)"
    )
    freeze = forms.ChoiceField(
        label="Freeze level", choices=[(k, f"{k}: {FREEZE_HELP[k]}") for k in FREEZE_LEVELS]
    )
    target_recall = forms.FloatField(
        min_value=0.01,
        max_value=1.0,
        help_text="the threshold is the one that reaches this recall on the validation split",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base"].choices = selectors.base_choices()
        defaults = default_config()
        for name in ("epochs", "lr", "batch_size", "min_positives", "freeze", "target_recall"):
            self.fields[name].initial = defaults[name]
        self.fields["base"].initial = "active"

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        config = {
            k: data[k]
            for k in ("epochs", "lr", "batch_size", "min_positives", "freeze", "target_recall")
        }
        for problem in config_problems(config):
            self.add_error(None, problem)
        base = data.get("base")
        if base == "active":
            data["base_version"] = active_model()  # None: there is none yet, start fresh
        elif base == "fresh":
            data["base_version"] = None
        else:
            data["base_version"] = ModelVersion.objects.filter(pk=base).first()
            if data["base_version"] is None:
                self.add_error("base", "That model version no longer exists.")
        data["config"] = config
        data["margin"] = settings.BEARSITE_PROMOTION_MARGIN
        return data
