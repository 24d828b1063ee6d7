from django import forms

from labeling.models import Survey


class SurveyForm(forms.ModelForm):
    class Meta:
        model = Survey
        fields = [
            "name", "description", "region", "start_date", "end_date", "camera", "aircraft",
            "altitude_m", "focal_length_mm", "pixel_pitch_um", "gsd_cm", "animal_length_m",
        ]
        widgets = {
            "start_date": forms.DateInput(attrs={"type": "date"}),
            "end_date": forms.DateInput(attrs={"type": "date"}),
            "description": forms.Textarea(attrs={"rows": 3}),
        }


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        if not data:
            raise forms.ValidationError("Choose at least one file.")
        files = data if isinstance(data, (list, tuple)) else [data]
        return files


class UploadForm(forms.Form):
    files = MultipleFileField(
        help_text="JPEG, PNG or TIFF frames, or zip archives of them. Select many at once."
    )


class UrlCsvForm(forms.Form):
    csv_file = forms.FileField(
        label="CSV of image URLs",
        help_text="Columns: url (required), source_page, licence, author.",
    )
