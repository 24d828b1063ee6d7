from django.contrib.auth import views as auth_views
from django.urls import path

from labeling.queues import views

urlpatterns = [
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/password_reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("label/", views.label_home, name="label-home"),
    path("label/tutorial/", views.tutorial, name="label-tutorial"),
    path("label/dashboard/", views.dashboard, name="label-dashboard"),
    path("label/setup/", views.setup, name="label-setup"),
    path("label/web/", views.curate, name="label-web"),
    path("label/<slug:queue>/", views.review, name="label-queue"),
    path("review/", views.adjudicate, name="label-review"),
]
