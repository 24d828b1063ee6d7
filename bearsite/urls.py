from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from bearsite.auth import LoginView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("bearsite.api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("inference.urls")),
    path("", include("results.urls")),
    path("", include("training.urls")),
    path("", include("labeling.queues.urls")),
    path("", include("labeling.urls")),
]

# Media (thumbnails) from the local disk in the embedded default; production puts a web server
# or an object store in front of MEDIA_URL.
@login_required
def media(request, path):
    # MEDIA_ROOT is read per request (tests move it), not once at import.
    return serve(request, path, document_root=settings.MEDIA_ROOT)


if settings.STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):
    urlpatterns += [re_path(r"^media/(?P<path>.*)$", media)]
