"""Settings, read from the environment with defaults that need no server.

Embedded default: SQLite and kombu's filesystem broker under ``BEARSITE_DATA_DIR`` (./var).
``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis (docker-compose and CI).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# --- Paths -------------------------------------------------------------------------------------
DATA_DIR = Path(os.environ.get("BEARSITE_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", DATA_DIR / "media")).resolve()
MEDIA_URL = "/media/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", DATA_DIR / "static")).resolve()
STATIC_URL = "/static/"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = os.environ.get("BEARSITE_SECRET_KEY")
    if key:
        return key
    # Embedded default: one random key per data folder, kept so sessions survive a restart.
    path = DATA_DIR / "secret_key"
    try:
        # Exclusive create: processes starting together agree on one key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    for _ in range(50):
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.1)  # another process created the file and is writing it
    raise RuntimeError(f"{path} is empty; delete it or set BEARSITE_SECRET_KEY")


# --- Core --------------------------------------------------------------------------------------
SECRET_KEY = _secret_key()
DEBUG = env_bool("BEARSITE_DEBUG", False)
ALLOWED_HOSTS = env_list("BEARSITE_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("BEARSITE_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "labeling",
    "inference",
    "training",
    "results",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bearsite.urls"
WSGI_APPLICATION = "bearsite.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "bearsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATICFILES_DIRS = [BASE_DIR / "bearsite" / "static"]
STORAGES = {
    "default": {
        "BACKEND": os.environ.get(
            "BEARSITE_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"
        )
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Database ----------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'bearsite.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes (web, two workers, beat) share the file: WAL lets readers run beside a
    # writer, IMMEDIATE transactions take the write lock up front instead of failing mid-way.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth and i18n -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
EMAIL_BACKEND = os.environ.get(
    "BEARSITE_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Uploads -----------------------------------------------------------------------------------
# One survey frame is 5-60 MB; a zip of a batch may be several GB. Django streams uploads over
# 2.5 MB to temporary files, so these limits bound disk, not memory.
BEARSITE_MAX_UPLOAD_FILE_BYTES = env_int("BEARSITE_MAX_UPLOAD_FILE_BYTES", 500 * 1024 * 1024)
BEARSITE_MAX_ZIP_BYTES = env_int("BEARSITE_MAX_ZIP_BYTES", 8 * 1024 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("BEARSITE_MAX_FILES_PER_UPLOAD", 1000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_TEMP_DIR = None
# Pillow's decompression-bomb limit, set deliberately: a 150 MP survey frame passes, above this
# an image is refused with a clear error before it is decoded.
BEARSITE_MAX_IMAGE_PIXELS = env_int("BEARSITE_MAX_IMAGE_PIXELS", 200_000_000)
BEARSITE_MIN_FRAME_SIDE = 224
BEARSITE_THUMBNAIL_SIZE = 320

# --- Web image import --------------------------------------------------------------------------
BEARSITE_FETCH_ALLOWED_HOSTS = env_list("BEARSITE_FETCH_ALLOWED_HOSTS", [])
BEARSITE_FETCH_MAX_BYTES = env_int("BEARSITE_FETCH_MAX_BYTES", 50 * 1024 * 1024)
BEARSITE_FETCH_TIMEOUT_S = env_float("BEARSITE_FETCH_TIMEOUT_S", 20.0)
BEARSITE_FETCH_MAX_REDIRECTS = env_int("BEARSITE_FETCH_MAX_REDIRECTS", 3)
BEARSITE_NEAR_DUPLICATE_BITS = env_int("BEARSITE_NEAR_DUPLICATE_BITS", 6)

# --- Model -------------------------------------------------------------------------------------
BEARSITE_IMAGENET_WEIGHTS = os.environ.get("BEARSITE_IMAGENET_WEIGHTS", "")
BEARSITE_DEVICE = os.environ.get("BEARSITE_DEVICE", "")  # "" = cuda if present, else cpu

# --- Celery ------------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_LONGEST_TASK_S = env_int("BEARSITE_LONGEST_TASK_S", 6 * 3600)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # Redis redelivers an unacknowledged task after the visibility timeout: keep it above the
    # longest task, or a long training run would be started twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_LONGEST_TASK_S + 3600}
else:
    _broker = Path(os.environ.get("BEARSITE_BROKER_DIR", DATA_DIR / "broker")).resolve()
    for sub in ("queue", "processed", "control"):
        (_broker / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker / "queue"),
        "data_folder_out": str(_broker / "queue"),
        "processed_folder": str(_broker / "processed"),
        "control_folder": str(_broker / "control"),
        "store_processed": False,
    }
    # The filesystem transport has no fan-out exchange for remote control.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_IGNORE_RESULT = True  # results live in job rows, not in the result backend
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env_int("BEARSITE_WORKER_MAX_MEMORY_KB", 4_000_000)
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_ROUTES = {
    "labeling.*": {"queue": "cpu"},
    "inference.score_chunk": {"queue": "gpu"},
    "inference.*": {"queue": "cpu"},
    "training.run": {"queue": "gpu"},
    "training.*": {"queue": "cpu"},
    "results.*": {"queue": "cpu"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Tests may run tasks in-process; never as a silent fallback when the broker is down.
CELERY_TASK_ALWAYS_EAGER = env_bool("BEARSITE_TASKS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True

# --- REST framework ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "bearsite.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "bearsite.api_errors.exception_handler",
    # Scoped throttles on the endpoints people could hammer: log-in, sign-up and voting.
    "DEFAULT_THROTTLE_RATES": {
        "login": os.environ.get("BEARSITE_THROTTLE_LOGIN", "10/min"),
        "signup": os.environ.get("BEARSITE_THROTTLE_SIGNUP", "5/min"),
        "vote": os.environ.get("BEARSITE_THROTTLE_VOTE", "240/min"),
    },
}

# --- Cache (throttles, role lookups) -------------------------------------------------------------
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
SPECTACULAR_SETTINGS = {
    "TITLE": "bearsite API",
    "DESCRIPTION": "Surveys, images, labelling queues, models, inference and training.",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    # Choice sets that share a field name get names of their own (drf-spectacular would make up
    # hashed ones, with a warning).
    "ENUM_NAME_OVERRIDES": {
        "QueueKindEnum": "labeling.models.QueueKind",
        "TileQueueKindEnum": ["candidates", "uncertain", "audit"],
        "WebImageCurationEnum": "labeling.models.WebImage.Curation",
        "CurationVerdictEnum": ["usable", "unusable"],
    },
}

# --- Logging -----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("BEARSITE_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Inference and queues ----------------------------------------------------------------------
BEARSITE_INFER_BATCH = env_int("BEARSITE_INFER_BATCH", 64)
BEARSITE_AUDIT_RATE = env_float("BEARSITE_AUDIT_RATE", 0.002)
BEARSITE_UNCERTAIN_PER_SURVEY = env_int("BEARSITE_UNCERTAIN_PER_SURVEY", 50)
BEARSITE_REINFER_ON_PROMOTE = env_bool("BEARSITE_REINFER_ON_PROMOTE", True)
BEARSITE_DEFAULT_VOTES = {"candidates": 2, "uncertain": 2, "audit": 1, "web": 1, "adjudication": 1}

# --- Labelling queues --------------------------------------------------------------------------
# Defaults; an admin changes "open sign-up" and "show the model score" at run time on the
# labelling dashboard (a LabellingSettings row overrides these once saved).
BEARSITE_OPEN_SIGNUP = env_bool("BEARSITE_OPEN_SIGNUP", False)
BEARSITE_SHOW_MODEL_SCORE = env_bool("BEARSITE_SHOW_MODEL_SCORE", False)
# A handed-out item is held this long; expired leases are ignored at once and deleted by beat.
BEARSITE_LEASE_MINUTES = env_float("BEARSITE_LEASE_MINUTES", 10.0)
BEARSITE_UNDO_SECONDS = env_int("BEARSITE_UNDO_SECONDS", 120)
# Gold items are injected with a probability that starts at GOLD_RATE_MAX and falls to
# GOLD_RATE_MIN as a volunteer answers GOLD_RAMP gold items with an accuracy at or above
# GOLD_TRUSTED_ACCURACY (see labeling.queues.consensus.gold_rate).
BEARSITE_GOLD_RATE_MAX = env_float("BEARSITE_GOLD_RATE_MAX", 0.4)
BEARSITE_GOLD_RATE_MIN = env_float("BEARSITE_GOLD_RATE_MIN", 0.1)
BEARSITE_GOLD_RAMP = env_int("BEARSITE_GOLD_RAMP", 20)
BEARSITE_GOLD_TRUSTED_ACCURACY = env_float("BEARSITE_GOLD_TRUSTED_ACCURACY", 0.9)
# Consensus defaults per queue where a survey has no queue setting of its own (SurveyQueue):
# agree = agreeing votes that retire an item; no_bear_below = one "no bear" vote retires an item
# scored below this; point_agree_lengths = bear points agree within this many animal lengths.
BEARSITE_QUEUE_RULES = {
    "candidates": {"agree": 2, "no_bear_below": None},
    "uncertain": {"agree": 2, "no_bear_below": None},
    "audit": {"agree": 2, "no_bear_below": 0.5},
    "web": {"agree": 1, "no_bear_below": None},
}
BEARSITE_POINT_AGREE_LENGTHS = env_float("BEARSITE_POINT_AGREE_LENGTHS", 0.5)
# Used for point agreement when a survey's ground sample distance is unknown (Web images too).
BEARSITE_FALLBACK_ANIMAL_LENGTH_PX = env_float("BEARSITE_FALLBACK_ANIMAL_LENGTH_PX", 80.0)

# --- Training ---
# Checkpoints (one folder per run, resumable) and the cache of cut training tiles.
BEARSITE_TRAINING_DIR = Path(os.environ.get("BEARSITE_TRAINING_DIR", DATA_DIR / "training")).resolve()
# The gate: the threshold is the one reaching this recall on the validation split; a new model
# replaces the active one only with this much fewer false positives per frame (relative).
BEARSITE_TARGET_RECALL = env_float("BEARSITE_TARGET_RECALL", 0.95)
BEARSITE_PROMOTION_MARGIN = env_float("BEARSITE_PROMOTION_MARGIN", 0.05)
# Beat queues a run once this many consensus labels were reached since the last run's snapshot.
BEARSITE_RETRAIN_MIN_NEW_LABELS = env_int("BEARSITE_RETRAIN_MIN_NEW_LABELS", 200)
BEARSITE_RETRAIN_CHECK_MINUTES = env_int("BEARSITE_RETRAIN_CHECK_MINUTES", 10)
# Validation split by frame: sha256(salt:frame sha256) % 100 < percent. Changing either moves
# frames between the splits, so runs before and after no longer compare.
BEARSITE_VAL_PERCENT = env_int("BEARSITE_VAL_PERCENT", 20)
BEARSITE_VAL_SALT = os.environ.get("BEARSITE_VAL_SALT", "bearsite-validation-v1")
# Training tiles: jittered crops per confirmed bear (training side), edited copies per Web bear,
# background tiles per frame, frames per survey sampled for background.
BEARSITE_CROPS_PER_BEAR = env_int("BEARSITE_CROPS_PER_BEAR", 4)
BEARSITE_WEB_COPIES = env_int("BEARSITE_WEB_COPIES", 2)
BEARSITE_BACKGROUND_PER_FRAME = env_int("BEARSITE_BACKGROUND_PER_FRAME", 4)
BEARSITE_BACKGROUND_FRAMES_PER_SURVEY = env_int("BEARSITE_BACKGROUND_FRAMES_PER_SURVEY", 100)
# Launch form defaults (training.loop.train.TrainConfig fields).
BEARSITE_TRAIN_EPOCHS = env_int("BEARSITE_TRAIN_EPOCHS", 10)
BEARSITE_TRAIN_LR = env_float("BEARSITE_TRAIN_LR", 1e-3)
BEARSITE_TRAIN_BATCH_SIZE = env_int("BEARSITE_TRAIN_BATCH_SIZE", 64)
BEARSITE_TRAIN_MIN_POSITIVES = env_int("BEARSITE_TRAIN_MIN_POSITIVES", 8)
BEARSITE_TRAIN_FREEZE = os.environ.get("BEARSITE_TRAIN_FREEZE", "stem")
BEARSITE_TRAIN_OPTIMIZER = os.environ.get("BEARSITE_TRAIN_OPTIMIZER", "sgd")
# Row writes per second while training (the page polls it).
BEARSITE_TRAINING_PROGRESS_PER_S = env_float("BEARSITE_TRAINING_PROGRESS_PER_S", 2.0)
