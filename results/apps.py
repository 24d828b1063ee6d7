from django.apps import AppConfig


class ResultsConfig(AppConfig):
    name = "results"
    verbose_name = "Survey results"

    def ready(self) -> None:
        # Mark a survey's report stale when its scores, items, votes or frames change.
        from results import signals

        signals.connect()
