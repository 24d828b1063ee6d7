from django import forms
from django.contrib.auth import password_validation

from labeling.models import InviteCode, SurveyQueue, Team


class SignupForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[\w.@+-]{2,150}$",
        max_length=150,
        help_text="Letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    email = forms.EmailField(
        required=False,
        help_text="Only used to reset a forgotten password.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    invite_code = forms.CharField(
        max_length=40,
        required=False,
        help_text="From the survey team.",
        error_messages={"required": "An invite code is needed to join."},
    )

    def __init__(self, *args, invite_required: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["invite_code"].required = invite_required

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data


class InviteForm(forms.ModelForm):
    class Meta:
        model = InviteCode
        fields = ["team", "max_uses", "expires_at", "note"]
        widgets = {"expires_at": forms.DateTimeInput(attrs={"type": "datetime-local"})}

    team = forms.ModelChoiceField(
        queryset=Team.objects.all(), required=False, empty_label="no team"
    )


class QueueSettingForm(forms.ModelForm):
    class Meta:
        model = SurveyQueue
        fields = ["enabled", "votes_needed", "agree_votes", "no_bear_below"]


class SwitchesForm(forms.Form):
    show_model_score = forms.BooleanField(required=False, label="Show volunteers the model's score")
    open_signup = forms.BooleanField(required=False, label="Open sign-up (no invite code needed)")
